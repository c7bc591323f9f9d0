/**
 * Logins of one event-loop turn share one commit (group commit,
 * src/store/group-commit.ts): each gets its token only once its session row
 * and audit row are committed; when the shared commit fails, every login in
 * it fails and none opens a session; writes after them (deleting the
 * principal) see their sessions.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/audit-log.js";
import { SERVER_ADMIN_CALLER } from "../../src/core/caller.js";
import { type Credential, Identity } from "../../src/core/identity.js";
import type { ControlStore } from "../../src/store/control-store.js";
import { openSqliteControlStore } from "../../src/store/sqlite-control-store.js";
import { type TestDataDir, createTestDataDir } from "../helpers/test-server.js";

const admin = { ...SERVER_ADMIN_CALLER, clientAddress: "127.0.0.1:1" };
const anonymous = { principal: undefined, clientAddress: "127.0.0.1:2" };
const IN_FLIGHT = 16;

/** Lets the logins started before it reach their queued commit, not past it. */
async function untilQueued(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe("concurrent Authenticate calls", () => {
  let dataDir: TestDataDir;
  let store: ControlStore;
  let identity: Identity;
  let credential: Credential;
  /** Audit actions whose rows the store refuses (a full disk, as far as SQLite can tell). */
  const refused = new Set<string>();

  /** Rows as another connection sees them: committed ones only. */
  const committed = (table: "sessions" | "audit_events"): number => {
    const db = new Database(join(dataDir.path, "commy.db"), { readonly: true });
    try {
      return (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  const loginsInParallel = (count: number) =>
    Array.from({ length: count }, () => identity.authenticate(anonymous, "t", credential));
  const principalOf = (token: string) =>
    identity.callerFor(`Bearer ${token}`, "127.0.0.1:3").principal?.id;

  beforeEach(async () => {
    dataDir = createTestDataDir();
    const real = openSqliteControlStore(join(dataDir.path, "commy.db"));
    store = {
      ...real,
      appendAudit: (event) => {
        if (refused.has(event.action)) throw new Error("SQLITE_FULL: database or disk is full");
        real.appendAudit(event);
      },
    };
    refused.clear();
    const audit = new AuditLog(store);
    identity = new Identity({ store, audit, adminToken: `ca_${"a".repeat(43)}` });
    store.insertTenant({ tenantId: "t", tenantName: "t", createdBy: "admin", createdAt: 0 });
    await identity.createPrincipal(admin, "t", "reader", "");
    credential = { kind: "api_key", key: identity.createApiKey(admin, "t", "reader", "").key };
  });
  afterEach(() => {
    identity.close();
    store.close();
    dataDir.remove();
  });

  it("each get a working token once their rows are committed", async () => {
    const auditBefore = committed("audit_events");
    const seenAtResolve: number[] = [];

    const sessions = await Promise.all(
      loginsInParallel(IN_FLIGHT).map((login) =>
        login.then((session) => {
          seenAtResolve.push(committed("sessions"));
          return session;
        }),
      ),
    );

    expect(seenAtResolve).toEqual(Array<number>(IN_FLIGHT).fill(IN_FLIGHT));
    expect(new Set(sessions.map((s) => s.token)).size).toBe(IN_FLIGHT);
    for (const session of sessions) expect(principalOf(session.token)).toBe("t/reader");
    expect(committed("audit_events") - auditBefore).toBe(IN_FLIGHT);
    const logins = store
      .queryAudit({ tenantId: "t", action: "auth.login", limit: 100 })
      .map((event) => `${event.principalId} ${event.outcome} ${event.detail}`);
    expect(logins).toEqual(Array<string>(IN_FLIGHT).fill("t/reader ok api_key"));
  });

  it("write nothing before their shared commit", async () => {
    const logins = loginsInParallel(4);
    await untilQueued();

    expect(committed("sessions")).toBe(0);
    await Promise.all(logins);
    expect(committed("sessions")).toBe(4);
  });

  it("all fail, and open no session, when their shared commit fails", async () => {
    refused.add("auth.login");

    const results = await Promise.allSettled(loginsInParallel(IN_FLIGHT));

    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect(String((result as PromiseRejectedResult).reason)).toMatch(/SQLITE_FULL/);
    }
    expect(committed("sessions")).toBe(0);
    expect(store.queryAudit({ tenantId: "t", action: "auth.login", limit: 100 })).toEqual([]);

    refused.clear();
    const [session] = await Promise.all(loginsInParallel(1));
    expect(principalOf(session?.token ?? "")).toBe("t/reader");
    expect(committed("sessions")).toBe(1);
  });

  it("refuse bad credentials alone, as before, next to good ones", async () => {
    const bad = identity.authenticate(anonymous, "t", { kind: "api_key", key: "ck_nope" });
    const good = loginsInParallel(2);

    await expect(bad).rejects.toThrow(/invalid credentials/);
    const sessions = await Promise.all(good);
    for (const session of sessions) expect(principalOf(session.token)).toBe("t/reader");
    const outcomes = store
      .queryAudit({ tenantId: "t", action: "auth.login", limit: 100 })
      .map((event) => event.outcome)
      .sort();
    expect(outcomes).toEqual(["denied", "ok", "ok"]);
  });

  it("come before a principal's deletion that follows them: its sessions go too", async () => {
    const logins = loginsInParallel(4);
    await untilQueued();
    expect(committed("sessions")).toBe(0);

    identity.deletePrincipal(admin, "t", "reader");

    expect(committed("sessions")).toBe(0);
    const sessions = await Promise.all(logins);
    for (const session of sessions) expect(principalOf(session.token)).toBeUndefined();
    const actions = store
      .queryAudit({ tenantId: "t", limit: 100 })
      .map((event) => event.action)
      .filter((action) => action === "auth.login" || action === "principal.delete");
    expect(actions).toEqual([
      "auth.login",
      "auth.login",
      "auth.login",
      "auth.login",
      "principal.delete",
    ]);
  });

  it("come before a tenant's deletion that follows them: its sessions go too", async () => {
    const logins = loginsInParallel(3);
    await untilQueued();

    store.deleteTenant("t");
    identity.forgetTenant("t");

    const sessions = await Promise.all(logins);
    expect(committed("sessions")).toBe(0);
    for (const session of sessions) expect(principalOf(session.token)).toBeUndefined();
  });
});
