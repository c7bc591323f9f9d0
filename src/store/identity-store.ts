/** Persistence of principals, credentials, grants, sessions and the audit log. */

/** A grant as stored; `permission` is the core's permission name. */
export interface GrantRecord {
  principalId: string;
  tenantId: string;
  permission: string;
  servicePrefix: string;
}

export interface PrincipalRecord {
  principalId: string;
  tenantId: string;
  name: string;
  /** scrypt$… or undefined when no password is set. */
  passwordHash: string | undefined;
  createdBy: string;
  createdAt: number;
}

export interface ApiKeyRecord {
  keyId: string;
  principalId: string;
  tenantId: string;
  principalName: string;
  /** SHA-256 of the secret, hex. */
  secretHash: string;
  description: string;
  createdBy: string;
  createdAt: number;
  revokedAt: number | undefined;
}

export interface SessionRecord {
  /** SHA-256 of the token, hex. */
  tokenHash: string;
  tenantId: string;
  principalId: string;
  /** Grants carried by the session itself (JWT or custom principals). */
  grantsJson: string | undefined;
  expiresAt: number;
}

export interface AuditRecord {
  eventId: number;
  time: number;
  principalId: string;
  tenantId: string;
  action: string;
  resource: string;
  outcome: "ok" | "denied" | "failed";
  clientAddress: string;
  detail: string;
}

export interface AuditQuery {
  tenantId?: string;
  since?: number;
  until?: number;
  principalId?: string;
  action?: string;
  /** Events with a larger event id than this. */
  afterEventId?: number;
  limit: number;
}

export interface IdentityStore {
  insertPrincipal(principal: PrincipalRecord): boolean;
  getPrincipal(principalId: string): PrincipalRecord | undefined;
  listPrincipals(tenantId: string): PrincipalRecord[];
  deletePrincipal(principalId: string): boolean;
  setPasswordHash(principalId: string, passwordHash: string): boolean;

  insertApiKey(key: ApiKeyRecord): void;
  getApiKey(keyId: string): ApiKeyRecord | undefined;
  listApiKeys(tenantId: string): ApiKeyRecord[];
  revokeApiKey(keyId: string, at: number): boolean;

  /** False when the principal already held that grant. */
  insertGrant(grant: GrantRecord): boolean;
  deleteGrant(grant: GrantRecord): boolean;
  grantsOf(principalId: string): GrantRecord[];
  grantsOfTenant(tenantId: string): GrantRecord[];

  insertSession(session: SessionRecord): void;
  getSession(tokenHash: string): SessionRecord | undefined;
  deleteSession(tokenHash: string): void;
  /** Removes a principal's sessions; returns their token hashes. */
  deleteSessionsOf(principalId: string): string[];
  deleteExpiredSessions(now: number): void;

  getJwtConfig(tenantId: string): string | undefined;
  setJwtConfig(tenantId: string, configJson: string | undefined): void;
}

export interface AuditStore {
  appendAudit(event: Omit<AuditRecord, "eventId">): void;
  /**
   * Runs `work` as one transaction: what it changes and the audit rows it
   * appends commit together (one commit, not one per row) or not at all.
   * `work` must be synchronous; a transaction inside it nests.
   */
  transaction<T>(work: () => T): T;
  /**
   * Runs `work` in one transaction with the other work queued in this
   * event-loop turn (group-commit.ts); resolves once it committed, rejects
   * when it did not, and then none of the group was written. `work` must be
   * synchronous. A `transaction` or `deleteSessionsOf` called meanwhile
   * first commits what is queued, so that commits keep the order of calls.
   */
  transactionInGroup(work: () => void): Promise<void>;
  queryAudit(query: AuditQuery): AuditRecord[];
}
