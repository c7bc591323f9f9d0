/** Internal: the identity and audit tables of the SQLite store. */
import type Database from "better-sqlite3";
import type { GroupCommit } from "./group-commit.js";
import type {
  ApiKeyRecord,
  AuditQuery,
  AuditRecord,
  AuditStore,
  GrantRecord,
  IdentityStore,
  PrincipalRecord,
  SessionRecord,
} from "./identity-store.js";

interface PrincipalRow {
  principal_id: string;
  tenant_id: string;
  name: string;
  password_hash: string | null;
  created_by: string;
  created_at: number;
}

interface ApiKeyRow {
  key_id: string;
  principal_id: string;
  tenant_id: string;
  principal_name: string;
  secret_hash: string;
  description: string;
  created_by: string;
  created_at: number;
  revoked_at: number | null;
}

interface GrantRow {
  principal_id: string;
  tenant_id: string;
  permission: string;
  service_prefix: string;
}

interface SessionRow {
  token_hash: string;
  tenant_id: string;
  principal_id: string;
  grants_json: string | null;
  expires_at: number;
}

interface AuditRow {
  event_id: number;
  time: number;
  principal_id: string;
  tenant_id: string;
  action: string;
  resource: string;
  outcome: AuditRecord["outcome"];
  client_address: string;
  detail: string;
}

const toPrincipal = (r: PrincipalRow): PrincipalRecord => ({
  principalId: r.principal_id,
  tenantId: r.tenant_id,
  name: r.name,
  passwordHash: r.password_hash ?? undefined,
  createdBy: r.created_by,
  createdAt: r.created_at,
});

const toApiKey = (r: ApiKeyRow): ApiKeyRecord => ({
  keyId: r.key_id,
  principalId: r.principal_id,
  tenantId: r.tenant_id,
  principalName: r.principal_name,
  secretHash: r.secret_hash,
  description: r.description,
  createdBy: r.created_by,
  createdAt: r.created_at,
  revokedAt: r.revoked_at ?? undefined,
});

const toGrant = (r: GrantRow): GrantRecord => ({
  principalId: r.principal_id,
  tenantId: r.tenant_id,
  permission: r.permission,
  servicePrefix: r.service_prefix,
});

const toSession = (r: SessionRow): SessionRecord => ({
  tokenHash: r.token_hash,
  tenantId: r.tenant_id,
  principalId: r.principal_id,
  grantsJson: r.grants_json ?? undefined,
  expiresAt: r.expires_at,
});

const toAudit = (r: AuditRow): AuditRecord => ({
  eventId: r.event_id,
  time: r.time,
  principalId: r.principal_id,
  tenantId: r.tenant_id,
  action: r.action,
  resource: r.resource,
  outcome: r.outcome,
  clientAddress: r.client_address,
  detail: r.detail,
});

export function sqliteIdentityStore(
  db: Database.Database,
  group: GroupCommit,
): IdentityStore & AuditStore {
  const q = {
    insertPrincipal: db.prepare(
      "INSERT OR IGNORE INTO principals VALUES (@principalId, @tenantId, @name, @passwordHash, @createdBy, @createdAt)",
    ),
    getPrincipal: db.prepare<[string], PrincipalRow>(
      "SELECT * FROM principals WHERE principal_id = ?",
    ),
    listPrincipals: db.prepare<[string], PrincipalRow>(
      "SELECT * FROM principals WHERE tenant_id = ? ORDER BY name",
    ),
    deletePrincipal: db.prepare("DELETE FROM principals WHERE principal_id = ?"),
    setPassword: db.prepare("UPDATE principals SET password_hash = ? WHERE principal_id = ?"),
    insertApiKey: db.prepare(
      `INSERT INTO api_keys VALUES (@keyId, @principalId, @tenantId, @principalName, @secretHash,
         @description, @createdBy, @createdAt, @revokedAt)`,
    ),
    getApiKey: db.prepare<[string], ApiKeyRow>("SELECT * FROM api_keys WHERE key_id = ?"),
    listApiKeys: db.prepare<[string], ApiKeyRow>(
      "SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id",
    ),
    revokeApiKey: db.prepare(
      "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
    ),
    insertGrant: db.prepare(
      "INSERT OR IGNORE INTO grants VALUES (@principalId, @tenantId, @permission, @servicePrefix)",
    ),
    deleteGrant: db.prepare(
      "DELETE FROM grants WHERE principal_id = @principalId AND permission = @permission AND service_prefix = @servicePrefix",
    ),
    grantsOf: db.prepare<[string], GrantRow>(
      "SELECT * FROM grants WHERE principal_id = ? ORDER BY permission, service_prefix",
    ),
    grantsOfTenant: db.prepare<[string], GrantRow>(
      "SELECT * FROM grants WHERE tenant_id = ? ORDER BY principal_id, permission, service_prefix",
    ),
    insertSession: db.prepare(
      "INSERT INTO sessions VALUES (@tokenHash, @tenantId, @principalId, @grantsJson, @expiresAt)",
    ),
    getSession: db.prepare<[string], SessionRow>("SELECT * FROM sessions WHERE token_hash = ?"),
    deleteSession: db.prepare("DELETE FROM sessions WHERE token_hash = ?"),
    sessionsOf: db.prepare<[string], { token_hash: string }>(
      "SELECT token_hash FROM sessions WHERE principal_id = ?",
    ),
    deleteSessionsOf: db.prepare("DELETE FROM sessions WHERE principal_id = ?"),
    deleteExpired: db.prepare("DELETE FROM sessions WHERE expires_at <= ?"),
    getJwt: db.prepare<[string], { config_json: string }>(
      "SELECT config_json FROM tenant_jwt WHERE tenant_id = ?",
    ),
    setJwt: db.prepare("INSERT OR REPLACE INTO tenant_jwt VALUES (?, ?)"),
    deleteJwt: db.prepare("DELETE FROM tenant_jwt WHERE tenant_id = ?"),
    appendAudit: db.prepare(
      `INSERT INTO audit_events (time, principal_id, tenant_id, action, resource, outcome, client_address, detail)
       VALUES (@time, @principalId, @tenantId, @action, @resource, @outcome, @clientAddress, @detail)`,
    ),
  };
  // One wrapper for every caller's work: better-sqlite3 nests it in a
  // savepoint when a transaction is already open. An outermost one first
  // commits the group queued before it (a nested one's outer one did).
  const runTransaction = db.transaction((work: () => unknown) => work());
  const inTransaction = (work: () => unknown): unknown => {
    if (!db.inTransaction) group.flush();
    return runTransaction(work);
  };
  const deleteSessionsOf = (principalId: string): string[] =>
    inTransaction(() => {
      const hashes = q.sessionsOf.all(principalId).map((r) => r.token_hash);
      q.deleteSessionsOf.run(principalId);
      return hashes;
    }) as string[];

  return {
    insertPrincipal: (p) =>
      q.insertPrincipal.run({ ...p, passwordHash: p.passwordHash ?? null }).changes === 1,
    getPrincipal: (id) => {
      const row = q.getPrincipal.get(id);
      return row === undefined ? undefined : toPrincipal(row);
    },
    listPrincipals: (tenantId) => q.listPrincipals.all(tenantId).map(toPrincipal),
    deletePrincipal: (id) => q.deletePrincipal.run(id).changes === 1,
    setPasswordHash: (id, hash) => q.setPassword.run(hash, id).changes === 1,
    insertApiKey: (k) => {
      q.insertApiKey.run({ ...k, revokedAt: k.revokedAt ?? null });
    },
    getApiKey: (keyId) => {
      const row = q.getApiKey.get(keyId);
      return row === undefined ? undefined : toApiKey(row);
    },
    listApiKeys: (tenantId) => q.listApiKeys.all(tenantId).map(toApiKey),
    revokeApiKey: (keyId, at) => q.revokeApiKey.run(at, keyId).changes === 1,
    insertGrant: (g) => q.insertGrant.run(g).changes === 1,
    deleteGrant: (g) => q.deleteGrant.run(g).changes === 1,
    grantsOf: (id) => q.grantsOf.all(id).map(toGrant),
    grantsOfTenant: (tenantId) => q.grantsOfTenant.all(tenantId).map(toGrant),
    insertSession: (s) => {
      q.insertSession.run({ ...s, grantsJson: s.grantsJson ?? null });
    },
    getSession: (hash) => {
      const row = q.getSession.get(hash);
      return row === undefined ? undefined : toSession(row);
    },
    deleteSession: (hash) => {
      q.deleteSession.run(hash);
    },
    deleteSessionsOf: (id) => deleteSessionsOf(id),
    deleteExpiredSessions: (now) => {
      q.deleteExpired.run(now);
    },
    getJwtConfig: (tenantId) => q.getJwt.get(tenantId)?.config_json,
    setJwtConfig: (tenantId, json) => {
      if (json === undefined) q.deleteJwt.run(tenantId);
      else q.setJwt.run(tenantId, json);
    },
    appendAudit: (e) => {
      q.appendAudit.run(e);
    },
    queryAudit: (query) => queryAudit(db, query),
    transaction: <T>(work: () => T): T => inTransaction(work) as T,
    transactionInGroup: (work) => group.enqueue(work),
  };
}

function queryAudit(db: Database.Database, query: AuditQuery): AuditRecord[] {
  const where: string[] = [];
  const params: Record<string, string | number> = { limit: query.limit };
  const add = (clause: string, name: string, value: string | number | undefined) => {
    if (value === undefined) return;
    where.push(clause);
    params[name] = value;
  };
  add("tenant_id = @tenantId", "tenantId", query.tenantId);
  add("time >= @since", "since", query.since);
  add("time < @until", "until", query.until);
  add("principal_id = @principalId", "principalId", query.principalId);
  add("action = @action", "action", query.action);
  add("event_id > @after", "after", query.afterEventId);
  const sql = `SELECT * FROM audit_events ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
               ORDER BY event_id LIMIT @limit`;
  return db.prepare<Record<string, string | number>, AuditRow>(sql).all(params).map(toAudit);
}
