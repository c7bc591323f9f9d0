/**
 * The server admin's token (README, docs/security.md): it works as a
 * bearer and, as api_key, to Authenticate for any tenant; without
 * COMMY_ADMIN_TOKEN it is generated on the first start into
 * <data-dir>/admin-token with mode 0600 and printed once. And what the
 * store keeps of secrets: hashes only — neither API key secrets, nor
 * passwords, nor session tokens in clear text — in a data directory only
 * the server's user can read.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createActor,
  expectUnauthorized,
  startServerWithExtras,
  testAdminToken,
} from "../helpers/identity-fixtures.js";
import {
  type TestDataDir,
  type TestServer,
  createTestDataDir,
  startTestServer,
} from "../helpers/test-server.js";

const modeOf = (path: string): number => statSync(path).mode & 0o777;

describe("the admin token", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
    const admin = server.connectClient("connect", "1.1");
    for (const tenantId of ["acme", "other"]) await admin.createTenant({ tenantId });
  });

  afterAll(async () => {
    await server.close();
  });

  it("works as a bearer token: the server admin, allowed everything", async () => {
    const me = await server.identityClient("admin").whoAmI({});
    expect(me.serverAdmin).toBe(true);
    expect(me.principal?.principalId).toBe("admin");
    await server.connectClient("grpc", "2").createTenant({ tenantId: "made-by-the-admin" });
  });

  it.each(["acme", "other"])(
    "works as api_key to Authenticate to tenant %s, giving a server-admin session",
    async (tenantId) => {
      const session = await server.identityClient("none").authenticate({
        tenantId,
        credential: { case: "apiKey", value: testAdminToken() },
      });
      const asSession = { bearer: session.token };
      const me = await server.identityClient(asSession).whoAmI({});
      expect(me.serverAdmin).toBe(true);
      await server
        .connectClient("connect", "1.1", { credentials: asSession })
        .createTenant({ tenantId: `${tenantId}-by-session` });
      await server.identityClient(asSession).logout({});
      await expectUnauthorized(server.identityClient(asSession).whoAmI({}));
      // Logging a session out leaves the token itself alone.
      expect((await server.identityClient("admin").whoAmI({})).serverAdmin).toBe(true);
    },
  );
});

describe("the admin token when none is given", () => {
  let dataDir: TestDataDir;
  const servers: TestServer[] = [];

  beforeAll(() => {
    dataDir = createTestDataDir();
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    for (const server of servers.splice(0)) await server.close();
  });

  afterAll(() => {
    dataDir.remove();
  });

  /** A server that picks its own admin token, as `commy serve` does; what it printed. */
  async function startOwnTokenServer(
    dir: string,
  ): Promise<{ server: TestServer; printed: string }> {
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const server = await startServerWithExtras(
      {},
      { dataDir: dir, adminTokenSource: "environment-or-data-dir" },
    );
    servers.push(server);
    const printed = stderr.mock.calls.map(([chunk]) => String(chunk)).join("");
    stderr.mockRestore();
    return { server, printed };
  }

  it("is generated on the first start into admin-token, mode 0600, printed once", async () => {
    vi.stubEnv("COMMY_ADMIN_TOKEN", "");
    const first = await startOwnTokenServer(dataDir.path);
    const path = join(dataDir.path, "admin-token");
    const token = readFileSync(path, "utf8").trim();
    expect(modeOf(path)).toBe(0o600);
    expect(token).toMatch(/^ca_[A-Za-z0-9_-]{43}$/);
    expect(first.server.server.adminToken).toBe(token);
    expect(first.printed.split(token)).toHaveLength(2);
    const me = await first.server.identityClient({ bearer: token }).whoAmI({});
    expect(me.serverAdmin).toBe(true);
    // The test helper's token is not this server's.
    await expectUnauthorized(first.server.identityClient("admin").whoAmI({}));
    await first.server.close();

    const second = await startOwnTokenServer(dataDir.path);
    expect(second.server.server.adminToken).toBe(token);
    expect(second.printed).not.toContain(token);
    expect(modeOf(path)).toBe(0o600);
    expect((await second.server.identityClient({ bearer: token }).whoAmI({})).serverAdmin).toBe(
      true,
    );
  });

  it("comes from COMMY_ADMIN_TOKEN when that is set, and then no file is written", async () => {
    const own = createTestDataDir();
    try {
      const token = `ca_from_the_environment_${"e".repeat(24)}`;
      vi.stubEnv("COMMY_ADMIN_TOKEN", token);
      const { server, printed } = await startOwnTokenServer(own.path);
      expect(server.server.adminToken).toBe(token);
      expect(printed).not.toContain(token);
      expect(readdirSync(own.path)).not.toContain("admin-token");
      expect((await server.identityClient({ bearer: token }).whoAmI({})).serverAdmin).toBe(true);
      await server.close();
    } finally {
      own.remove();
    }
  });
});

describe("secrets at rest", () => {
  const password = "correct horse battery staple 42";
  let dataDir: TestDataDir;
  const secrets: Record<string, string> = {};

  beforeAll(async () => {
    dataDir = createTestDataDir();
    const server = await startTestServer({ dataDir: dataDir.path });
    try {
      await server.connectClient("connect", "1.1").createTenant({ tenantId: "acme" });
      await server.connectClient("connect", "1.1").createService({
        tenantId: "acme",
        serviceName: "svc",
      });
      const actor = await createActor(server, "acme", "alice", [], password);
      const anonymous = server.identityClient("none");
      const byKey = await anonymous.authenticate({
        tenantId: "acme",
        credential: { case: "apiKey", value: actor.apiKey },
      });
      const byPassword = await anonymous.authenticate({
        tenantId: "acme",
        credential: { case: "password", value: { username: "alice", password } },
      });
      secrets["the API key"] = actor.apiKey;
      secrets["the API key's secret"] = actor.apiKey.slice(`ck_${actor.keyId}_`.length);
      secrets["the password"] = password;
      secrets["a session token"] = byKey.token;
      secrets["another session token"] = byPassword.token;
      secrets["the admin token"] = testAdminToken();
    } finally {
      await server.close();
    }
  });

  afterAll(() => {
    dataDir.remove();
  });

  it("the store (commy.db, read-only) holds none of them in clear text, only hashes", () => {
    const db = new Database(join(dataDir.path, "commy.db"), {
      readonly: true,
      fileMustExist: true,
    });
    try {
      const tables = db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((t) => t.name);
      expect(tables).toEqual(expect.arrayContaining(["principals", "api_keys", "sessions"]));
      const everything = JSON.stringify(
        tables.map((table) => db.prepare(`SELECT * FROM "${table}"`).all()),
      );
      for (const [what, secret] of Object.entries(secrets))
        expect(everything.includes(secret), `${what} in the store`).toBe(false);
      const key = db.prepare<[], { secret_hash: string }>("SELECT secret_hash FROM api_keys").get();
      expect(key?.secret_hash).toMatch(/^[0-9a-f]{64}$/);
      const principal = db
        .prepare<[], { password_hash: string }>("SELECT password_hash FROM principals")
        .get();
      expect(principal?.password_hash).toMatch(
        /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/,
      );
      const sessions = db
        .prepare<[], { token_hash: string }>("SELECT token_hash FROM sessions")
        .all();
      expect(sessions).toHaveLength(2);
      for (const session of sessions) expect(session.token_hash).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      db.close();
    }
  });

  it("no file of the store holds them either, byte for byte", () => {
    const storeFiles = readdirSync(dataDir.path).filter((name) => name.startsWith("commy.db"));
    expect(storeFiles).toContain("commy.db");
    for (const name of storeFiles) {
      const bytes = readIfThere(join(dataDir.path, name));
      // The WAL's -shm and -wal files come and go with SQLite connections
      // (the checkpoint worker's among them): one gone holds nothing.
      if (bytes === undefined) continue;
      for (const [what, secret] of Object.entries(secrets))
        expect(bytes.includes(secret), `${what} in ${name}`).toBe(false);
    }
  });

  it("the data directory is 0700 and every file in it 0600 (docs/security.md)", async () => {
    const parent = createTestDataDir();
    try {
      const fresh = join(parent.path, "fresh");
      const server = await startTestServer({ dataDir: fresh });
      await server.connectClient("connect", "1.1").createTenant({ tenantId: "acme" });
      await server
        .connectClient("connect", "1.1")
        .createService({ tenantId: "acme", serviceName: "svc" });
      const loose: string[] = [];
      const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) {
            if (modeOf(path) !== 0o700)
              loose.push(`${path.slice(fresh.length)}/ ${modeOf(path).toString(8)}`);
            walk(path);
          } else if ((modeOf(path) & 0o077) !== 0) {
            loose.push(`${path.slice(fresh.length)} ${modeOf(path).toString(8)}`);
          }
        }
      };
      expect(modeOf(fresh).toString(8)).toBe("700");
      walk(fresh);
      await server.close();
      expect(loose, "files others may read").toEqual([]);
    } finally {
      parent.remove();
    }
  });
});

function readIfThere(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}
