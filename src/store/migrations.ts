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
];
