/**
 * The embedded control-plane store: one SQLite file in the data directory,
 * in WAL mode, migrated forward on open.
 */
import { chmodSync, closeSync, openSync } from "node:fs";
import Database from "better-sqlite3";
import type { ControlStore, Page, ServiceRecord, TenantRecord } from "./control-store.js";
import { createGroupCommit } from "./group-commit.js";
import { MIGRATIONS } from "./migrations.js";
import { sqliteIdentityStore } from "./sqlite-identity-store.js";
import { BACKSTOP_PAGES, startWalCheckpointer } from "./wal-checkpointer.js";

interface TenantRow {
  tenant_id: string;
  tenant_name: string;
  created_by: string;
  created_at: number;
}

interface ServiceRow {
  service_id: string;
  tenant_id: string;
  service_name: string;
  created_by: string;
  created_at: number;
}

const toTenant = (row: TenantRow): TenantRecord => ({
  tenantId: row.tenant_id,
  tenantName: row.tenant_name,
  createdBy: row.created_by,
  createdAt: row.created_at,
});

const toService = (row: ServiceRow): ServiceRecord => ({
  serviceId: row.service_id,
  tenantId: row.tenant_id,
  serviceName: row.service_name,
  createdBy: row.created_by,
  createdAt: row.created_at,
});

function page<T>(rows: T[], limit: number, nameOf: (item: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, next: nameOf(items[items.length - 1] as T) };
}

/** Opens (creating and migrating as needed) the SQLite store at `path`. */
export function openSqliteControlStore(path: string): ControlStore {
  // Created private before SQLite opens it; its -wal and -shm files take
  // the database file's mode.
  closeSync(openSync(path, "a", 0o600));
  chmodSync(path, 0o600);
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  // NORMAL: a committed transaction survives a process crash (SIGKILL); only
  // an OS crash may lose the last ones. See docs/operations.md.
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  migrate(db);
  // Checkpoints run on a worker (wal-checkpointer.ts); this connection's own
  // are the backstop.
  db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
  const checkpointer = startWalCheckpointer(path);

  const statements = {
    insertTenant: db.prepare(
      "INSERT OR IGNORE INTO tenants (tenant_id, tenant_name, created_by, created_at) VALUES (?, ?, ?, ?)",
    ),
    getTenant: db.prepare<[string], TenantRow>("SELECT * FROM tenants WHERE tenant_id = ?"),
    listTenants: db.prepare<[string, number], TenantRow>(
      "SELECT * FROM tenants WHERE tenant_id > ? ORDER BY tenant_id LIMIT ?",
    ),
    deleteTenant: db.prepare("DELETE FROM tenants WHERE tenant_id = ?"),
    deleteTenantSessions: db.prepare("DELETE FROM sessions WHERE tenant_id = ?"),
    servicesOfTenant: db.prepare<[string], ServiceRow>(
      "SELECT * FROM services WHERE tenant_id = ? ORDER BY service_name",
    ),
    insertService: db.prepare(
      "INSERT OR IGNORE INTO services (service_id, tenant_id, service_name, created_by, created_at) VALUES (?, ?, ?, ?, ?)",
    ),
    getService: db.prepare<[string, string], ServiceRow>(
      "SELECT * FROM services WHERE tenant_id = ? AND service_name = ?",
    ),
    getServiceById: db.prepare<[string], ServiceRow>("SELECT * FROM services WHERE service_id = ?"),
    listServices: db.prepare<[string, string, number], ServiceRow>(
      "SELECT * FROM services WHERE tenant_id = ? AND service_name > ? ORDER BY service_name LIMIT ?",
    ),
    allServices: db.prepare<[], ServiceRow>(
      "SELECT * FROM services ORDER BY tenant_id, service_name",
    ),
    deleteService: db.prepare("DELETE FROM services WHERE service_id = ?"),
  };

  const inOneTransaction = db.transaction((work: () => void) => work());
  const group = createGroupCommit((work) => inOneTransaction(work));

  const deleteTenant = db.transaction((tenantId: string): ServiceRecord[] | undefined => {
    const services = statements.servicesOfTenant.all(tenantId).map(toService);
    const { changes } = statements.deleteTenant.run(tenantId);
    // Sessions name their tenant without a foreign key (the admin's need none).
    statements.deleteTenantSessions.run(tenantId);
    return changes === 0 ? undefined : services;
  });

  return {
    ...sqliteIdentityStore(db, group),
    insertTenant: (t) =>
      statements.insertTenant.run(t.tenantId, t.tenantName, t.createdBy, t.createdAt).changes === 1,
    getTenant: (tenantId) => {
      const row = statements.getTenant.get(tenantId);
      return row === undefined ? undefined : toTenant(row);
    },
    listTenants: (after, limit) =>
      page(
        statements.listTenants.all(after ?? "", limit + 1).map(toTenant),
        limit,
        (t) => t.tenantId,
      ),
    // After the sessions queued before it are in, so that it deletes them too.
    deleteTenant: (tenantId) => {
      if (!db.inTransaction) group.flush();
      return deleteTenant(tenantId);
    },
    insertService: (s) =>
      statements.insertService.run(s.serviceId, s.tenantId, s.serviceName, s.createdBy, s.createdAt)
        .changes === 1,
    getService: (tenantId, serviceName) => {
      const row = statements.getService.get(tenantId, serviceName);
      return row === undefined ? undefined : toService(row);
    },
    getServiceById: (serviceId) => {
      const row = statements.getServiceById.get(serviceId);
      return row === undefined ? undefined : toService(row);
    },
    listServices: (tenantId, after, limit) =>
      page(
        statements.listServices.all(tenantId, after ?? "", limit + 1).map(toService),
        limit,
        (s) => s.serviceName,
      ),
    allServices: () => statements.allServices.all().map(toService),
    deleteService: (tenantId, serviceName) => {
      const row = statements.getService.get(tenantId, serviceName);
      if (row === undefined) return undefined;
      statements.deleteService.run(row.service_id);
      return toService(row);
    },
    close: () => {
      group.flush();
      checkpointer.stop();
      db.close();
    },
  };
}

function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the store has schema version ${current}; this build knows up to ${MIGRATIONS.length} (downgrade?)`,
    );
  }
  const apply = db.transaction(() => {
    for (let version = current; version < MIGRATIONS.length; version++) {
      db.exec(MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    }
  });
  apply();
}
