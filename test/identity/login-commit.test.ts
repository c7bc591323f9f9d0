/**
 * A login's session row and its audit row are one commit: a session that
 * could not be recorded does not exist, and every session has its record.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/core/audit-log.js";
import { SERVER_ADMIN_CALLER } from "../../src/core/caller.js";
import { Identity } from "../../src/core/identity.js";
import type { ControlStore } from "../../src/store/control-store.js";
import { openSqliteControlStore } from "../../src/store/sqlite-control-store.js";
import { type TestDataDir, createTestDataDir } from "../helpers/test-server.js";

const admin = { ...SERVER_ADMIN_CALLER, clientAddress: "127.0.0.1:1" };
const anonymous = { principal: undefined, clientAddress: "127.0.0.1:2" };

describe("Authenticate with an API key", () => {
  let dataDir: TestDataDir;
  let store: ControlStore;
  let identity: Identity;
  let apiKey: string;
  /** Audit actions whose rows the store refuses (a full disk, as far as SQLite can tell). */
  const refused = new Set<string>();

  const storedSessions = (): number => {
    const db = new Database(join(dataDir.path, "commy.db"), { readonly: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM sessions").get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

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
    apiKey = identity.createApiKey(admin, "t", "reader", "").key;
  });
  afterEach(() => {
    identity.close();
    store.close();
    dataDir.remove();
  });

  it("opens no session when its audit row cannot be written", async () => {
    refused.add("auth.login");

    await expect(
      identity.authenticate(anonymous, "t", { kind: "api_key", key: apiKey }),
    ).rejects.toThrow();

    expect(storedSessions()).toBe(0);
  });

  it("records every session it opens, and the token works", async () => {
    const first = await identity.authenticate(anonymous, "t", { kind: "api_key", key: apiKey });
    const second = await identity.authenticate(anonymous, "t", { kind: "api_key", key: apiKey });

    expect(storedSessions()).toBe(2);
    const logins = store
      .queryAudit({ tenantId: "t", action: "auth.login", limit: 10 })
      .map((event) => `${event.principalId} ${event.outcome}`);
    expect(logins).toEqual(["t/reader ok", "t/reader ok"]);
    for (const session of [first, second]) {
      expect(identity.callerFor(`Bearer ${session.token}`, "127.0.0.1:3").principal?.id).toBe(
        "t/reader",
      );
    }
  });

  it("refuses the key for another tenant, and once it is revoked", async () => {
    store.insertTenant({ tenantId: "u", tenantName: "u", createdBy: "admin", createdAt: 0 });
    await expect(
      identity.authenticate(anonymous, "u", { kind: "api_key", key: apiKey }),
    ).rejects.toThrow(/invalid credentials/);

    await identity.authenticate(anonymous, "t", { kind: "api_key", key: apiKey });
    const keyId = store.listApiKeys("t")[0]?.keyId ?? "?";
    identity.revokeApiKey(admin, "t", keyId);

    await expect(
      identity.authenticate(anonymous, "t", { kind: "api_key", key: apiKey }),
    ).rejects.toThrow(/invalid credentials/);
  });
});
