/**
 * Every client command of `commy`, run as a real process against a real
 * server on a loopback port: people's output and --json, the exit code of
 * each ErrorCode, value encodings, and `var watch` until Ctrl-C.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import {
  type BuiltCli,
  type CliResult,
  type FakeHome,
  buildCli,
  createFakeHome,
  runCli,
  startCli,
} from "./cli-fixtures.js";

// Every step spawns a process; on a busy 2-CPU machine one takes up to a second.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });

let cli: BuiltCli;
let home: FakeHome;
let server: TestServer;

beforeAll(async () => {
  [cli, server] = await Promise.all([buildCli(), startTestServer()]);
  home = createFakeHome();
}, 180_000);

afterAll(async () => {
  await server?.close();
  cli?.remove();
  home?.remove();
});

/** Runs `commy` as the server admin (unless the args carry another --token). */
const commy = (args: string[], input?: string | Uint8Array): Promise<CliResult> =>
  runCli(cli, home, [...args, "--url", server.server.url], {
    env: { COMMY_TOKEN: testAdminToken() },
    input,
  });

/** Runs and expects exit code 0, returning stdout. */
async function ok(args: string[], input?: string | Uint8Array): Promise<string> {
  const result = await commy(args, input);
  expect(result.code, `commy ${args.join(" ")}\n${result.stderr}`).toBe(0);
  return result.stdout;
}

const json = async <T = Record<string, unknown>>(args: string[], input?: string): Promise<T> =>
  JSON.parse(await ok([...args, "--json"], input)) as T;

describe("tenant", () => {
  it("create, get, list, delete — for people and as JSON", async () => {
    expect(await ok(["tenant", "create", "t-one", "--name", "Tenant One"])).toBe(
      "created tenant t-one\n",
    );
    const created = await json(["tenant", "create", "t-two"]);
    // Without --name, the display name is the id.
    expect(created).toMatchObject({ tenantId: "t-two", tenantName: "t-two", createdBy: "admin" });
    expect(typeof created.createdAt).toBe("string");

    const shown = await ok(["tenant", "get", "t-one"]);
    expect(shown).toMatch(
      /^tenant: t-one\nname: Tenant One\ncreated by: admin\ncreated at: \d{4}-/,
    );
    expect(await json(["tenant", "get", "t-one"])).toMatchObject({ tenantName: "Tenant One" });

    const table = (await ok(["tenant", "list"])).split("\n");
    expect(table[0]).toMatch(/^TENANT\s+NAME\s+CREATED BY\s+CREATED AT$/);
    expect(table.some((line) => /^t-one\s+Tenant One\s+admin\s+/.test(line))).toBe(true);
    const listed = await json<{ tenantId: string }[]>(["tenant", "list"]);
    expect(listed.map((t) => t.tenantId)).toEqual(expect.arrayContaining(["t-one", "t-two"]));

    expect(await ok(["tenant", "delete", "t-one"])).toBe("deleted tenant t-one\n");
    expect(await json(["tenant", "delete", "t-two"])).toEqual({ tenantId: "t-two", deleted: true });
    const left = await json<{ tenantId: string }[]>(["tenant", "list"]);
    expect(left.map((t) => t.tenantId)).not.toContain("t-one");
  });
});

describe("exit codes follow the ErrorCode", () => {
  beforeAll(async () => {
    await ok(["tenant", "create", "codes"]);
  });

  it("NOT_FOUND → 3, with the code and message on stderr (JSON with --json)", async () => {
    const missing = await commy(["tenant", "get", "no-such-tenant"]);
    expect(missing.code).toBe(3);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^commy: NOT_FOUND: /);
    const asJson = await commy(["var", "get", "codes/none/x", "--json"]);
    expect(asJson.code).toBe(3);
    expect(JSON.parse(asJson.stderr)).toMatchObject({ error: { code: "NOT_FOUND" } });
  });

  it("ALREADY_EXISTS → 6", async () => {
    const again = await commy(["tenant", "create", "codes"]);
    expect(again.code).toBe(6);
    expect(again.stderr).toMatch(/ALREADY_EXISTS/);
  });

  it("INVALID_REQUEST → 7 (a name the server refuses)", async () => {
    const bad = await commy(["tenant", "create", ".hidden"]);
    expect(bad.code).toBe(7);
    expect(bad.stderr).toMatch(/INVALID_REQUEST/);
  });

  it("UNAUTHORIZED → 5 (a wrong token; no token)", async () => {
    expect((await commy(["tenant", "list", "--token", "ck_wrong"])).code).toBe(5);
    const none = await runCli(cli, home, ["tenant", "list", "--url", server.server.url]);
    expect(none.code).toBe(5);
    expect(none.stderr).toMatch(/UNAUTHORIZED/);
  });

  it("PERMISSION_DENIED → 4 (a principal without the grant)", async () => {
    await ok(["principal", "create", "codes/reader"]);
    const key = (await ok(["key", "create", "codes/reader"])).trim();
    const denied = await commy(["tenant", "create", "not-mine", "--token", key]);
    expect(denied.code).toBe(4);
    expect(denied.stderr).toMatch(/PERMISSION_DENIED/);
  });

  it("VERSION_CONFLICT → 10, CONNECTION_LOST → 8, usage mistakes → 2", async () => {
    await ok(["service", "create", "codes/s"]);
    await ok(["var", "create", "codes/s/v", "one"]);
    expect((await commy(["var", "set", "codes/s/v", "two", "--expect-version", "7"])).code).toBe(
      10,
    );
    const lost = await runCli(cli, home, ["tenant", "list", "--url", "http://127.0.0.1:1"]);
    expect(lost.code).toBe(8);
    for (const args of [
      ["var", "get", "codes/s"], // not a variable path
      ["var", "set", "codes/s/v", "--hex", "abc"], // odd number of hex digits
      ["var", "set", "codes/s/v", "x", "--base64", "eA=="], // two values
      ["tenant", "list", "--no-such-option"],
      ["tenant"], // a group without its subcommand
      ["grant", "codes/reader", "variable:everything"],
      ["no-such-command"],
    ]) {
      const result = await commy(args);
      expect(result.code, `commy ${args.join(" ")}\n${result.stderr}`).toBe(2);
      expect(result.stderr).not.toBe("");
    }
  });
});

describe("service", () => {
  it("create, get, list, delete — for people and as JSON", async () => {
    await ok(["tenant", "create", "svc"]);
    expect(await ok(["service", "create", "svc/alpha"])).toMatch(
      /^created service svc\/alpha \(id [0-9a-f-]{36}\)\n$/,
    );
    const beta = await json(["service", "create", "svc/beta"]);
    expect(beta).toMatchObject({ tenantId: "svc", serviceName: "beta", createdBy: "admin" });
    expect(await ok(["service", "get", "svc/alpha"])).toMatch(/^service: svc\/alpha\nid: /);
    expect(await json(["service", "get", "svc/beta"])).toMatchObject({ serviceId: beta.serviceId });
    expect(await ok(["service", "list", "svc"])).toMatch(/^SERVICE\s+ID\s+.*\nalpha\s+.*\nbeta\s+/);
    const listed = await json<{ serviceName: string }[]>(["service", "list", "svc"]);
    expect(listed.map((s) => s.serviceName)).toEqual(["alpha", "beta"]);
    expect(await ok(["service", "delete", "svc/alpha"])).toBe("deleted service svc/alpha\n");
    expect(await json(["service", "delete", "svc/beta"])).toMatchObject({ deleted: true });
    expect((await commy(["service", "get", "svc/alpha"])).code).toBe(3);
  });
});

describe("var", () => {
  beforeAll(async () => {
    await ok(["tenant", "create", "vars"]);
    await ok(["service", "create", "vars/cfg"]);
  });

  it("create, set, get, list, delete — for people and as JSON", async () => {
    expect(await ok(["var", "create", "vars/cfg/mode", "off", "--capacity", "64"])).toBe(
      "created vars/cfg/mode (version 1, 3 of 64 bytes)\n",
    );
    expect(await json(["var", "create", "vars/cfg/empty"])).toMatchObject({
      name: "empty",
      version: 1,
      size: 0,
    });
    expect(await ok(["var", "set", "vars/cfg/mode", "on"])).toBe("vars/cfg/mode: version 2\n");
    expect(await json(["var", "set", "vars/cfg/mode", "auto", "--expect-version", "2"])).toEqual({
      tenantId: "vars",
      serviceName: "cfg",
      variableName: "mode",
      version: 3,
      size: 4,
    });
    expect(await ok(["var", "get", "vars/cfg/mode"])).toBe("auto\n");
    expect(await json(["var", "get", "vars/cfg/mode"])).toEqual({
      tenantId: "vars",
      serviceName: "cfg",
      variableName: "mode",
      version: 3,
      size: 4,
      value: "auto",
      encoding: "text",
    });
    expect(await ok(["var", "set", "vars/cfg/made", "new", "--create"])).toBe(
      "vars/cfg/made: version 1\n",
    );
    expect(await ok(["var", "list", "vars/cfg"])).toMatch(
      /^VARIABLE\s+VERSION\s+SIZE\s+CAPACITY\nempty\s+1\s+0\s+\d+\nmade\s+1\s+3\s+\d+\nmode\s+3\s+4\s+64$/m,
    );
    const listed = await json<{ name: string; version: number }[]>(["var", "list", "vars/cfg"]);
    expect(listed.map((v) => [v.name, v.version])).toEqual([
      ["empty", 1],
      ["made", 1],
      ["mode", 3],
    ]);
    expect(await ok(["var", "delete", "vars/cfg/made"])).toBe("deleted vars/cfg/made\n");
    expect(await json(["var", "delete", "vars/cfg/empty"])).toMatchObject({ deleted: true });
    expect((await commy(["var", "get", "vars/cfg/made"])).code).toBe(3);
  });

  it("takes and shows values as text, hex, base64 or a file (or standard input)", async () => {
    const bytes = Uint8Array.from([0x00, 0xff, 0x10, 0x80, 0x41]);
    await ok(["var", "create", "vars/cfg/blob", "--hex", "00ff108041", "--capacity", "32"]);
    expect(await ok(["var", "get", "vars/cfg/blob", "--encoding", "hex"])).toBe("00ff108041\n");
    expect(await ok(["var", "get", "vars/cfg/blob", "--encoding", "base64"])).toBe("AP8QgEE=\n");
    // Not UTF-8: shown as base64, and said so.
    const asText = await commy(["var", "get", "vars/cfg/blob"]);
    expect(asText.stdout).toBe("AP8QgEE=\n");
    expect(asText.stderr).toMatch(/not UTF-8/);
    expect(await json(["var", "get", "vars/cfg/blob"])).toMatchObject({
      value: "AP8QgEE=",
      encoding: "base64",
    });

    const out = join(home.path, "blob.bin");
    expect(await ok(["var", "get", "vars/cfg/blob", "--out", out])).toMatch(/^wrote 5 bytes/);
    expect(Uint8Array.from(readFileSync(out))).toEqual(bytes);

    await ok(["var", "set", "vars/cfg/blob", "--base64", "aGVsbG8="]);
    expect(await ok(["var", "get", "vars/cfg/blob"])).toBe("hello\n");
    const file = join(home.path, "in.bin");
    writeFileSync(file, Uint8Array.from([1, 2, 3]));
    await ok(["var", "set", "vars/cfg/blob", "--file", file]);
    expect(await ok(["var", "get", "vars/cfg/blob", "--encoding", "hex"])).toBe("010203\n");
    await ok(["var", "set", "vars/cfg/blob", "--file", "-"], Uint8Array.from([0xca, 0xfe]));
    expect(await ok(["var", "get", "vars/cfg/blob", "--encoding", "hex"])).toBe("cafe\n");
    expect(
      (await commy(["var", "set", "vars/cfg/blob", "--file", join(home.path, "nope")])).code,
    ).toBe(2);
  });

  it("watch prints the current value, then each change, until SIGINT (exit 0)", async () => {
    await ok(["var", "create", "vars/cfg/live", "first"]);
    const watch = startCli(
      cli,
      home,
      ["var", "watch", "vars/cfg/live", "--url", server.server.url],
      {
        env: { COMMY_TOKEN: testAdminToken() },
      },
    );
    try {
      expect(await watch.waitForLine((l) => l.startsWith("live v1"))).toBe(
        "live v1 snapshot: first",
      );
      await ok(["var", "set", "vars/cfg/live", "second"]);
      expect(await watch.waitForLine((l) => l.startsWith("live v2"))).toBe(
        "live v2 update: second",
      );
    } finally {
      const stopped = await watch.stop("SIGINT");
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(stopped.stderr).toMatch(/stopped/);
    }
  });

  it("watch --json prints one JSON object per change, a whole service", async () => {
    const watch = startCli(
      cli,
      home,
      ["var", "watch", "vars/cfg", "--json", "--encoding", "hex", "--url", server.server.url],
      { env: { COMMY_TOKEN: testAdminToken() } },
    );
    try {
      await watch.waitForLine((l) => l.includes('"variableName":"mode"'));
      await ok(["var", "set", "vars/cfg/mode", "AB"]);
      const line = await watch.waitForLine((l) => l.includes('"value":"4142"'));
      expect(JSON.parse(line)).toMatchObject({
        variableName: "mode",
        kind: "update",
        skipped: 0,
        value: "4142",
        encoding: "hex",
      });
    } finally {
      expect((await watch.stop("SIGINT")).code).toBe(0);
    }
  });
});

describe("principals, keys, grants, audit", () => {
  beforeAll(async () => {
    await ok(["tenant", "create", "idp"]);
    await ok(["service", "create", "idp/config-a"]);
    await ok(["var", "create", "idp/config-a/x", "42"]);
  });

  it("principal create (with a password from stdin), list, delete", async () => {
    expect(await ok(["principal", "create", "idp/alice"], "correct horse\n")).toBe(
      "created principal idp/alice\n",
    );
    expect(
      await json(["principal", "create", "idp/bob", "--password-stdin"], "battery staple"),
    ).toMatchObject({ principalId: "idp/bob", hasPassword: true, createdBy: "admin" });
    expect(await ok(["principal", "list", "idp"])).toMatch(
      /^PRINCIPAL\s+PASSWORD\s+CREATED BY\s+CREATED AT\nidp\/alice\s+no\s+admin\s+.*\nidp\/bob\s+yes\s+admin/,
    );
    const listed = await json<{ name: string }[]>(["principal", "list", "idp"]);
    expect(listed.map((p) => p.name)).toEqual(["alice", "bob"]);
    await ok(["principal", "set-password", "idp/alice"], "long enough password");
    expect(await ok(["principal", "delete", "idp/alice"])).toBe("deleted principal idp/alice\n");
    expect(await json(["principal", "revoke", "idp/bob"])).toMatchObject({ deleted: true });
    expect((await commy(["principal", "delete", "idp/bob"])).code).toBe(3);
  });

  it("key create, list, revoke; grant, grants, revoke; whoami with the key", async () => {
    await ok(["principal", "create", "idp/deployer"]);
    const created = await commy(["key", "create", "idp/deployer", "--description", "ci"]);
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^ck_[0-9a-f]{16}_/);
    expect(created.stderr).toMatch(/shown only now/);
    const asJson = await json<{ keyId: string; secret: string }>(["key", "create", "idp/deployer"]);
    expect(asJson.secret.startsWith(`ck_${asJson.keyId}_`)).toBe(true);

    expect(await ok(["key", "list", "idp"])).toMatch(
      /^KEY\s+PRINCIPAL\s+DESCRIPTION.*\n.*deployer/,
    );
    const keys = await json<{ keyId: string; revokedAt?: string }[]>(["key", "list", "idp"]);
    expect(keys).toHaveLength(2);

    const asDeployer = (args: string[]): Promise<CliResult> => commy([...args, "--token", secret]);
    expect((await asDeployer(["var", "get", "idp/config-a/x"])).code).toBe(4);
    expect(await ok(["grant", "idp/deployer", "variable:read", "--prefix", "config-"])).toBe(
      "granted variable:read on config-* to idp/deployer\n",
    );
    expect(await json(["grant", "idp/deployer", "service:read"])).toMatchObject({
      principalName: "deployer",
      permission: "service:read",
      servicePrefix: "",
    });
    expect((await asDeployer(["var", "get", "idp/config-a/x"])).stdout).toBe("42\n");
    expect(await ok(["grants", "idp"])).toMatch(
      /^PRINCIPAL\s+PERMISSION\s+SERVICE PREFIX\ndeployer\s+/,
    );
    const grants = await json<{ permission: string }[]>([
      "grants",
      "idp",
      "--principal",
      "deployer",
    ]);
    expect(grants.map((g) => g.permission).sort()).toEqual(["service:read", "variable:read"]);

    const me = await asDeployer(["whoami"]);
    expect(me.stdout).toMatch(/^principal: idp\/deployer\nserver admin: no\ngrants: /);
    expect(JSON.parse((await asDeployer(["whoami", "--json"])).stdout)).toMatchObject({
      serverAdmin: false,
      principal: { principalId: "idp/deployer" },
    });

    expect(await ok(["revoke", "idp/deployer", "variable:read", "--prefix", "config-"])).toBe(
      "revoked variable:read on config-* from idp/deployer\n",
    );
    expect(await json(["revoke", "idp/deployer", "service:read"])).toMatchObject({
      permission: "service:read",
    });
    expect((await commy(["revoke", "idp/deployer", "service:read"])).code).toBe(3);
    expect((await asDeployer(["var", "get", "idp/config-a/x"])).code).toBe(4);

    const keyId = /^ck_([0-9a-f]{16})_/.exec(secret)?.[1] ?? "";
    expect(await ok(["key", "revoke", "idp", keyId])).toBe(`revoked key ${keyId}\n`);
    expect(await json(["key", "revoke", "idp", asJson.keyId])).toMatchObject({ revoked: true });
    expect((await asDeployer(["whoami"])).code).toBe(5);
  });

  it("audit lists events, filtered by tenant, action and principal", async () => {
    const table = await ok(["audit", "--tenant", "idp", "--action", "grant.add"]);
    const lines = table.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TIME\s+PRINCIPAL\s+ACTION\s+RESOURCE\s+OUTCOME\s+DETAIL$/);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.slice(1).every((line) => /\sgrant\.add\s/.test(line))).toBe(true);
    const events = await json<{ action: string; tenantId: string; outcome: string }[]>([
      "audit",
      "--tenant",
      "idp",
      "--principal",
      "admin",
      "--limit",
      "3",
    ]);
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.tenantId === "idp")).toBe(true);
    const denied = await json<{ outcome: string }[]>(["audit", "--tenant", "idp"]);
    expect(denied.some((e) => e.outcome === "denied")).toBe(true);
    expect((await commy(["audit", "--since", "yesterday-ish"])).code).toBe(2);
  });
});
