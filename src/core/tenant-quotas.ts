/**
 * Per-tenant quotas (no imports: the configuration, which the CLI loads at
 * start-up, reads the defaults without loading the core).
 */

/** What one tenant may hold; beyond it, creating more is RESOURCE_EXHAUSTED. */
export interface TenantQuotas {
  maxServices: number;
  /** Variables over all of the tenant's services. */
  maxVariables: number;
  /** Bytes of all of the tenant's service files. */
  maxBytes: number;
}

export const DEFAULT_TENANT_QUOTAS: TenantQuotas = {
  maxServices: 1_000,
  maxVariables: 100_000,
  maxBytes: 8 * 1024 ** 3,
};
