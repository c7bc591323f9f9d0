/**
 * Internal: the control-plane schema, one migration per version. A
 * migration is never edited once released; a change is a new entry.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: tenants and services
  `CREATE TABLE tenants (
     tenant_id   TEXT PRIMARY KEY,
     tenant_name TEXT NOT NULL,
     created_by  TEXT NOT NULL,
     created_at  INTEGER NOT NULL
   ) STRICT;
   CREATE TABLE services (
     service_id   TEXT PRIMARY KEY,
     tenant_id    TEXT NOT NULL REFERENCES tenants(tenant_id) ON DELETE CASCADE,
     service_name TEXT NOT NULL,
     created_by   TEXT NOT NULL,
     created_at   INTEGER NOT NULL,
     UNIQUE (tenant_id, service_name)
   ) STRICT;`,
  // 2: identity (principals, API keys, grants, sessions, JWT settings) and audit
  `CREATE TABLE principals (
     principal_id  TEXT PRIMARY KEY,
     tenant_id     TEXT NOT NULL REFERENCES tenants(tenant_id) ON DELETE CASCADE,
     name          TEXT NOT NULL,
     password_hash TEXT,
     created_by    TEXT NOT NULL,
     created_at    INTEGER NOT NULL,
     UNIQUE (tenant_id, name)
   ) STRICT;
   CREATE TABLE api_keys (
     key_id         TEXT PRIMARY KEY,
     principal_id   TEXT NOT NULL REFERENCES principals(principal_id) ON DELETE CASCADE,
     tenant_id      TEXT NOT NULL,
     principal_name TEXT NOT NULL,
     secret_hash    TEXT NOT NULL,
     description    TEXT NOT NULL,
     created_by     TEXT NOT NULL,
     created_at     INTEGER NOT NULL,
     revoked_at     INTEGER
   ) STRICT;
   CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
   CREATE TABLE grants (
     principal_id   TEXT NOT NULL REFERENCES principals(principal_id) ON DELETE CASCADE,
     tenant_id      TEXT NOT NULL,
     permission     TEXT NOT NULL,
     service_prefix TEXT NOT NULL,
     PRIMARY KEY (principal_id, permission, service_prefix)
   ) STRICT;
   CREATE INDEX grants_by_tenant ON grants (tenant_id);
   CREATE TABLE sessions (
     token_hash   TEXT PRIMARY KEY,
     tenant_id    TEXT NOT NULL,
     principal_id TEXT NOT NULL,
     grants_json  TEXT,
     expires_at   INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX sessions_by_principal ON sessions (principal_id);
   CREATE TABLE tenant_jwt (
     tenant_id   TEXT PRIMARY KEY REFERENCES tenants(tenant_id) ON DELETE CASCADE,
     config_json TEXT NOT NULL
   ) STRICT;
   CREATE TABLE audit_events (
     event_id       INTEGER PRIMARY KEY AUTOINCREMENT,
     time           INTEGER NOT NULL,
     principal_id   TEXT NOT NULL,
     tenant_id      TEXT NOT NULL,
     action         TEXT NOT NULL,
     resource       TEXT NOT NULL,
     outcome        TEXT NOT NULL,
     client_address TEXT NOT NULL,
     detail         TEXT NOT NULL
   ) STRICT;
   CREATE INDEX audit_by_tenant_time ON audit_events (tenant_id, time);`,
];
