/**
 * `commy` as a user meets it before any call: --help of every command
 * (with an example), the exit-code table, where the connection settings
 * come from (flags > COMMY_URL/COMMY_TOKEN > config file), and `commy
 * serve` with the options of SERVER_OPTIONS.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createProgram } from "../../src/cli/program.js";
import { SERVER_OPTIONS } from "../../src/config.js";
import { createTestDataDir } from "../helpers/test-server.js";
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

vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });

let cli: BuiltCli;
let home: FakeHome;
let server: TestServer;

beforeAll(async () => {
  [cli, server] = await Promise.all([buildCli(), startTestServer()]);
  home = createFakeHome();
  const admin = server.connectClient("connect", "1.1");
  await admin.createTenant({ tenantId: "cfg" });
});

afterAll(async () => {
  await server?.close();
  cli?.remove();
  home?.remove();
});

/** Every command line that names a command, e.g. ["var", "get"], from the program itself. */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return command.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [path, ...commandPaths(sub, path)];
  });
}

describe("--help", () => {
  it("every command has help with an example, and exits 0", async () => {
    const paths = [[], ...commandPaths(await createProgram())];
    expect(paths.length).toBeGreaterThan(25);
    // A few at a time: each is a process.
    for (let i = 0; i < paths.length; i += 4) {
      const batch = paths.slice(i, i + 4);
      const results = await Promise.all(
        batch.map((path) => runCli(cli, home, [...path, "--help"])),
      );
      results.forEach((result, j) => {
        const name = ["commy", ...(batch[j] ?? [])].join(" ");
        expect(result.code, `${name} --help\n${result.stderr}`).toBe(0);
        expect(result.stdout, name).toMatch(new RegExp(`^Usage: ${name}`));
        expect(result.stdout, name).toMatch(/\nExamples?:\n {2}\$ .*\bcommy /);
      });
    }
  });

  it("the top-level help documents the exit codes of every ErrorCode", async () => {
    const { stdout } = await runCli(cli, home, ["--help"]);
    for (const line of [
      "0  success",
      "1  INTERNAL_ERROR",
      "2  usage",
      "3  NOT_FOUND",
      "4  PERMISSION_DENIED",
      "5  UNAUTHORIZED",
      "6  ALREADY_EXISTS",
      "7  INVALID_REQUEST",
      "8  CONNECTION_LOST",
      "9  TIMEOUT",
      "10  VERSION_CONFLICT",
      "11  RESOURCE_EXHAUSTED",
    ]) {
      expect(stdout).toContain(line);
    }
  });

  it("serve --help lists every server option with its environment variable", async () => {
    const { stdout, code } = await runCli(cli, home, ["serve", "--help"]);
    expect(code).toBe(0);
    for (const option of SERVER_OPTIONS) {
      expect(stdout).toContain(`--${option.flag} <value>`);
      expect(stdout.replace(/\s+/g, " ")).toContain(`(env ${option.env})`);
    }
  });
});

describe("connection settings: flags > environment > config file > default", () => {
  const list = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    runCli(cli, home, ["tenant", "get", "cfg", ...args], { env });
  const unreachable = "http://127.0.0.1:1";

  it("reads url and token from the default config file (~/.config/commy/cli.json)", async () => {
    const fileHome = createFakeHome();
    try {
      mkdirSync(join(fileHome.configDir, "commy"), { recursive: true });
      writeFileSync(
        join(fileHome.configDir, "commy/cli.json"),
        JSON.stringify({ url: server.server.url, token: testAdminToken() }),
      );
      const fromFile = await runCli(cli, fileHome, ["tenant", "get", "cfg"]);
      expect(fromFile.code, fromFile.stderr).toBe(0);
      // The environment beats the file…
      const envUrl = await runCli(cli, fileHome, ["tenant", "get", "cfg"], {
        env: { COMMY_URL: unreachable },
      });
      expect(envUrl.code).toBe(8);
      const envToken = await runCli(cli, fileHome, ["tenant", "get", "cfg"], {
        env: { COMMY_TOKEN: "ck_wrong" },
      });
      expect(envToken.code).toBe(5);
      // …and flags beat the environment.
      const flags = await runCli(
        cli,
        fileHome,
        ["tenant", "get", "cfg", "--url", server.server.url, "--token", testAdminToken()],
        { env: { COMMY_URL: unreachable, COMMY_TOKEN: "ck_wrong" } },
      );
      expect(flags.code, flags.stderr).toBe(0);
    } finally {
      fileHome.remove();
    }
  });

  it("--config (or COMMY_CLI_CONFIG) names another file; a missing or bad one is a usage error", async () => {
    const file = join(home.path, "other.json");
    writeFileSync(file, JSON.stringify({ url: server.server.url, token: testAdminToken() }));
    expect((await list(["--config", file])).code).toBe(0);
    expect((await list([], { COMMY_CLI_CONFIG: file })).code).toBe(0);
    expect((await list(["--config", file], { COMMY_TOKEN: "ck_wrong" })).code).toBe(5);
    const missing = await list(["--config", join(home.path, "missing.json")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the CLI config file/);
    const bad = join(home.path, "bad.json");
    writeFileSync(bad, "{ not json");
    expect((await list(["--config", bad])).code).toBe(2);
  });

  it("without any setting: http://127.0.0.1:8080 and no token", async () => {
    const result = await list(["--timeout", "2000"]);
    // Whatever listens there (usually nothing), this call cannot succeed as nobody.
    expect([5, 8, 9]).toContain(result.code);
  });
});

describe("serve", () => {
  it("refuses a bad option value with the config error and exit code 1", async () => {
    const result = await runCli(cli, home, ["serve", "--port", "not-a-port"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^commy: --port: port must be a port number/);
  });

  it("serves until SIGTERM with the options it was given; client commands reach it", async () => {
    const dataDir = createTestDataDir();
    const serve = startCli(
      cli,
      home,
      ["serve", "--port", "0", "--data-dir", dataDir.path, "--log-level", "info"],
      { env: { COMMY_ADMIN_TOKEN: testAdminToken(), COMMY_METRICS: "false" } },
    );
    try {
      const line = await serve.waitForLine((l) => l.includes("commy is serving"), 60_000);
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const created = await runCli(cli, home, ["tenant", "create", "served", "--url", url], {
        env: { COMMY_TOKEN: testAdminToken() },
      });
      expect(created.code, created.stderr).toBe(0);
    } finally {
      const stopped = await serve.stop("SIGTERM", 30_000);
      dataDir.remove();
      expect(stopped.code, stopped.stderr).toBe(0);
    }
  });
});
