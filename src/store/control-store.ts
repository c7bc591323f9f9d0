/**
 * The control plane's persistence: tenants and services (later principals,
 * grants, audit). The embedded default is SQLite (sqlite-control-store.ts);
 * a clustered engine implements the same interface.
 */

/** A tenant as stored. */
export interface TenantRecord {
  tenantId: string;
  tenantName: string;
  createdBy: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
}

/** A service as stored; its variables live in its service file. */
export interface ServiceRecord {
  serviceId: string;
  tenantId: string;
  serviceName: string;
  createdBy: string;
  createdAt: number;
}

/** One page of a listing, ordered by name. */
export interface Page<T> {
  items: T[];
  /** The name to continue after, when there is more. */
  next?: string;
}

import type { AuditStore, IdentityStore } from "./identity-store.js";

export interface ControlStore extends IdentityStore, AuditStore {
  /** Inserts a tenant; false when its id is taken. */
  insertTenant(tenant: TenantRecord): boolean;
  getTenant(tenantId: string): TenantRecord | undefined;
  listTenants(after: string | undefined, limit: number): Page<TenantRecord>;
  /** Deletes a tenant and its services; returns the services it had, or undefined if there was no such tenant. */
  deleteTenant(tenantId: string): ServiceRecord[] | undefined;

  /** Inserts a service; false when the tenant already has one of that name. */
  insertService(service: ServiceRecord): boolean;
  getService(tenantId: string, serviceName: string): ServiceRecord | undefined;
  getServiceById(serviceId: string): ServiceRecord | undefined;
  listServices(tenantId: string, after: string | undefined, limit: number): Page<ServiceRecord>;
  /** Every service of every tenant (for start-up checks). */
  allServices(): ServiceRecord[];
  deleteService(tenantId: string, serviceName: string): ServiceRecord | undefined;

  close(): void;
}
