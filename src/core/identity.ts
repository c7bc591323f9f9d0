/**
 * Identity: credentials → principals, sessions, principal and grant
 * management. Bearer tokens are resolved once and cached by their raw
 * value, so an authenticated call costs a map lookup; hashing happens at
 * Authenticate (and at the first use of an API key as a bearer).
 */
import type { AuditRecord } from "../store/identity-store.js";
import type { ControlStore } from "../store/control-store.js";
import type { AuditLog } from "./audit-log.js";
import {
  type Caller,
  type Grant,
  type GrantPermission,
  GRANT_PERMISSIONS,
  type Principal,
  SERVER_ADMIN,
} from "./caller.js";
import { CommyError, alreadyExists, invalidRequest, notFound } from "./commy-error.js";
import {
  API_KEY_PREFIX,
  SESSION_PREFIX,
  hashPassword,
  newApiKey,
  newSessionToken,
  parseApiKey,
  sameDigest,
  sha256Hex,
  verifyPassword,
} from "./credentials.js";
import {
  type JwtSettings,
  describeInvalidJwtSettings,
  parseGrantStrings,
  verifyJwt,
} from "./jwt-verifier.js";
import { describeInvalidName } from "./names.js";

/** Credentials presented to Authenticate (and the legacy bridge). */
export type Credential =
  | { kind: "api_key"; key: string }
  | { kind: "password"; username: string; password: string }
  | { kind: "jwt"; token: string }
  | { kind: "custom"; data: unknown };

/** A pluggable verifier for credentials Commy does not know (config: a module path). */
export interface CustomVerifier {
  /** The identity behind `data`, or undefined when the credentials are not valid. */
  verify(input: {
    tenantId: string;
    data: unknown;
  }):
    | Promise<{ subject: string; permissions: string[] } | undefined>
    | { subject: string; permissions: string[] }
    | undefined;
}

/** A session handed out by Authenticate. */
export interface Session {
  token: string;
  expiresAt: number;
  principal: Principal;
}

export interface IdentityOptions {
  store: ControlStore;
  audit: AuditLog;
  adminToken: string;
  now?: () => number;
  /** Lifetime of a session token (default one hour). */
  sessionTtlMs?: number;
  customVerifier?: CustomVerifier;
}

interface Resolved {
  principal: Principal;
  expiresAt: number;
  /** Aborted when the credential is revoked or expires. */
  controller: AbortController;
}

const MIN_PASSWORD_LENGTH = 8;
const MAX_SECRET_LENGTH = 4096;
const INVALID_CREDENTIALS = "invalid credentials";

export class Identity {
  readonly #store: ControlStore;
  readonly #audit: AuditLog;
  readonly #now: () => number;
  readonly #sessionTtlMs: number;
  readonly #adminToken: string;
  readonly #custom: CustomVerifier | undefined;
  /** Raw bearer token → what it resolved to. */
  readonly #resolved = new Map<string, Resolved>();
  /** Principal id → raw tokens resolved for it (to revoke them at once). */
  readonly #tokensOf = new Map<string, Set<string>>();
  /** Stored principals, shared by all their tokens so that grant changes apply at once. */
  readonly #principals = new Map<string, Principal>();
  /** Ends streams of expired tokens, once a second (one timer, not one per token). */
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: IdentityOptions) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
    this.#sessionTtlMs = options.sessionTtlMs ?? 60 * 60 * 1000;
    this.#adminToken = options.adminToken;
    this.#custom = options.customVerifier;
    this.#cache(options.adminToken, {
      principal: SERVER_ADMIN,
      expiresAt: Infinity,
      controller: new AbortController(),
    });
    this.#store.deleteExpiredSessions(this.#now());
    this.#sweeper = setInterval(() => this.#sweepExpired(), 1000);
    this.#sweeper.unref();
  }

  /**
   * The caller behind a verified TLS client certificate whose subject names
   * a stored principal ("<tenant>/<name>"); anonymous when none does.
   */
  callerForCertificate(principalId: string, clientAddress: string): Caller {
    const principal = isInvalidPrincipalId(principalId) ? undefined : this.#principal(principalId);
    return { principal, clientAddress };
  }

  /** The caller behind an Authorization header value ("Bearer <token>"), authenticated or not. */
  callerFor(authorization: string | null | undefined, clientAddress: string): Caller {
    const token = bearerToken(authorization);
    const resolved = token === undefined ? undefined : this.#resolve(token);
    if (resolved === undefined) return { principal: undefined, clientAddress };
    return {
      principal: resolved.principal,
      clientAddress,
      credentialSignal: resolved.controller.signal,
    };
  }

  /** Exchanges credentials for a session token; UNAUTHORIZED for anything wrong. */
  async authenticate(caller: Caller, tenantId: string, credential: Credential): Promise<Session> {
    const principal = await this.#verify(tenantId, credential);
    if (principal === undefined) {
      this.#audit.record(caller, {
        action: "auth.login",
        tenantId,
        resource: tenantId,
        outcome: "denied",
        detail: credential.kind,
      });
      throw new CommyError("UNAUTHORIZED", INVALID_CREDENTIALS);
    }
    const ttl = this.#now() + this.#sessionTtlMs;
    const expiresAt = Math.min(ttl, principal.expiresAt ?? ttl);
    const session = newSession(principal.principal, expiresAt);
    // The session row and its audit row in one commit, shared with the other
    // logins of this event-loop turn (group commit: one WAL append for all,
    // which is most of a login's cost). The token leaves only once committed.
    await this.#store.transactionInGroup(() => {
      this.#storeSession(tenantId, session, principal.ephemeral);
      this.#audit.record(
        { ...caller, principal: principal.principal },
        {
          action: "auth.login",
          tenantId,
          resource: tenantId,
          outcome: "ok",
          detail: credential.kind,
        },
      );
    });
    return session;
  }

  /** A new session token for a valid one, which stops working; streams opened with it go on. */
  refresh(caller: Caller, token: string): Session {
    const resolved = token.startsWith(SESSION_PREFIX) ? this.#resolve(token) : undefined;
    const stored = resolved === undefined ? undefined : this.#store.getSession(sha256Hex(token));
    if (resolved === undefined || stored === undefined) {
      this.#audit.record(caller, {
        action: "auth.refresh",
        resource: "",
        outcome: "denied",
        detail: "UNAUTHORIZED",
      });
      throw new CommyError("UNAUTHORIZED", "the session is not valid");
    }
    const ephemeral = stored.grantsJson !== undefined;
    // A JWT or custom session never outlives what it was issued for: its
    // refreshes keep the first expiry; a stored principal's get a new hour.
    const expiresAt = ephemeral ? stored.expiresAt : this.#now() + this.#sessionTtlMs;
    // The old session out, the new one in and the audit row: one commit.
    const session = this.#store.transaction(() => {
      this.#store.deleteSession(sha256Hex(token));
      const opened = newSession(resolved.principal, expiresAt);
      this.#storeSession(stored.tenantId, opened, ephemeral);
      this.#audit.record(
        { ...caller, principal: resolved.principal },
        {
          action: "auth.refresh",
          tenantId: stored.tenantId,
          resource: resolved.principal.id,
          outcome: "ok",
        },
      );
      return opened;
    });
    // Once committed. Cached now, not at first use, because streams opened
    // with the old token go on under its controller.
    this.#cache(session.token, {
      principal: resolved.principal,
      expiresAt,
      controller: resolved.controller,
    });
    this.#forgetToken(token, false);
    return session;
  }

  /** Revokes a session token at once (streams opened with it end). */
  logout(caller: Caller, token: string | undefined): void {
    if (
      token === undefined ||
      !token.startsWith(SESSION_PREFIX) ||
      this.#resolve(token) === undefined
    ) {
      this.#audit.record(caller, {
        action: "auth.logout",
        resource: caller.principal?.id ?? "",
        outcome: "denied",
        detail: "UNAUTHORIZED",
      });
      throw new CommyError("UNAUTHORIZED", "logout needs a valid session token");
    }
    this.#store.transaction(() => {
      this.#store.deleteSession(sha256Hex(token));
      this.#audit.record(caller, {
        action: "auth.logout",
        tenantId: caller.principal?.tenantId,
        resource: caller.principal?.id ?? "",
        outcome: "ok",
      });
    });
    this.#forgetToken(token, true);
  }

  /** Who the caller is. */
  whoAmI(caller: Caller): Principal {
    if (caller.principal !== undefined) return caller.principal;
    return this.#audit.authorize(caller, "tenant.read", {});
  }

  // ---- principals ----

  async createPrincipal(
    caller: Caller,
    tenantId: string,
    name: string,
    password: string,
  ): Promise<PrincipalView> {
    const actor = this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("tenant", tenantId);
    validate("principal", name);
    if (password !== "") checkPassword(password);
    const passwordHash = password === "" ? undefined : await hashPassword(password);
    const record = {
      principalId: `${tenantId}/${name}`,
      tenantId,
      name,
      passwordHash,
      createdBy: actor.id,
      createdAt: this.#now(),
    };
    return this.#audit.audited(caller, "principal.create", tenantId, record.principalId, () => {
      this.#tenantExists(tenantId);
      if (!this.#store.insertPrincipal(record))
        throw alreadyExists(`principal ${name} in tenant ${tenantId}`);
      return view(record);
    });
  }

  listPrincipals(caller: Caller, tenantId: string): PrincipalView[] {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("tenant", tenantId);
    this.#tenantExists(tenantId);
    return this.#store.listPrincipals(tenantId).map(view);
  }

  deletePrincipal(caller: Caller, tenantId: string, name: string): void {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("principal", name);
    const principalId = `${tenantId}/${name}`;
    this.#audit.audited(caller, "principal.delete", tenantId, principalId, () => {
      if (!this.#store.deletePrincipal(principalId))
        throw notFound(`principal ${name} in tenant ${tenantId}`);
      this.#store.deleteSessionsOf(principalId);
      this.#revokeAllOf(principalId);
      this.#principals.delete(principalId);
    });
  }

  async setPassword(
    caller: Caller,
    tenantId: string,
    name: string,
    password: string,
  ): Promise<void> {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("principal", name);
    checkPassword(password);
    const principalId = `${tenantId}/${name}`;
    const passwordHash = await hashPassword(password);
    this.#audit.audited(caller, "principal.password", tenantId, principalId, () => {
      if (!this.#store.setPasswordHash(principalId, passwordHash))
        throw notFound(`principal ${name} in tenant ${tenantId}`);
      this.#store.deleteSessionsOf(principalId);
      this.#revokeSessionsOf(principalId);
    });
  }

  // ---- API keys ----

  createApiKey(caller: Caller, tenantId: string, principalName: string, description: string) {
    const actor = this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("principal", principalName);
    if (description.length > 256) throw invalidRequest("description is longer than 256 characters");
    const principalId = `${tenantId}/${principalName}`;
    const { keyId, secret, key } = newApiKey();
    return this.#audit.audited(caller, "apikey.create", tenantId, `${principalId}#${keyId}`, () => {
      if (this.#store.getPrincipal(principalId) === undefined)
        throw notFound(`principal ${principalName} in tenant ${tenantId}`);
      const record = {
        keyId,
        principalId,
        tenantId,
        principalName,
        secretHash: sha256Hex(secret),
        description,
        createdBy: actor.id,
        createdAt: this.#now(),
        revokedAt: undefined,
      };
      this.#store.insertApiKey(record);
      return { record, key };
    });
  }

  listApiKeys(caller: Caller, tenantId: string) {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("tenant", tenantId);
    this.#tenantExists(tenantId);
    return this.#store.listApiKeys(tenantId);
  }

  revokeApiKey(caller: Caller, tenantId: string, keyId: string): void {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    this.#audit.audited(caller, "apikey.revoke", tenantId, keyId, () => {
      const key = this.#store.getApiKey(keyId);
      if (
        key === undefined ||
        key.tenantId !== tenantId ||
        !this.#store.revokeApiKey(keyId, this.#now())
      ) {
        throw notFound(`API key ${keyId} in tenant ${tenantId}`);
      }
      for (const token of [...(this.#tokensOf.get(key.principalId) ?? [])]) {
        if (token.startsWith(`${API_KEY_PREFIX}${keyId}_`)) this.#forgetToken(token, true);
      }
    });
  }

  // ---- grants ----

  grant(
    caller: Caller,
    tenantId: string,
    principalName: string,
    permission: string,
    servicePrefix: string,
  ): void {
    this.#changeGrant(
      caller,
      "grant.add",
      { tenantId, principalName, permission, servicePrefix },
      (record) => {
        this.#store.insertGrant(record);
      },
    );
  }

  revoke(
    caller: Caller,
    tenantId: string,
    principalName: string,
    permission: string,
    servicePrefix: string,
  ): void {
    this.#changeGrant(
      caller,
      "grant.remove",
      { tenantId, principalName, permission, servicePrefix },
      (record) => {
        if (!this.#store.deleteGrant(record))
          throw notFound(
            `grant ${permission}${servicePrefix ? `:${servicePrefix}` : ""} of ${principalName}`,
          );
      },
    );
  }

  listGrants(
    caller: Caller,
    tenantId: string,
    principalName: string,
  ): { principalName: string; grant: Grant }[] {
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("tenant", tenantId);
    this.#tenantExists(tenantId);
    const rows =
      principalName === ""
        ? this.#store.grantsOfTenant(tenantId)
        : this.#store.grantsOf(`${tenantId}/${principalName}`);
    return rows.map((row) => ({
      principalName: row.principalId.slice(tenantId.length + 1),
      grant: {
        tenantId,
        permission: row.permission as GrantPermission,
        servicePrefix: row.servicePrefix,
      },
    }));
  }

  /** Permission names as the legacy protocol reports them ("admin" for a tenant admin). */
  permissionNames(principal: Principal, tenantId: string): string[] {
    if (principal.serverAdmin) return ["admin"];
    const names = principal.grants
      .filter((g) => g.tenantId === tenantId)
      .map((g) =>
        g.permission === "tenant:admin"
          ? "admin"
          : g.servicePrefix
            ? `${g.permission}:${g.servicePrefix}`
            : g.permission,
      );
    return [...new Set(names)];
  }

  // ---- JWT and audit ----

  setJwtConfig(caller: Caller, tenantId: string, settings: JwtSettings | undefined): void {
    this.#audit.authorize(caller, "jwt.configure", { tenantId });
    validate("tenant", tenantId);
    this.#audit.audited(caller, "jwt.configure", tenantId, tenantId, () => {
      this.#tenantExists(tenantId);
      const problem = settings === undefined ? undefined : describeInvalidJwtSettings(settings);
      if (problem !== undefined) throw invalidRequest(problem);
      this.#store.setJwtConfig(
        tenantId,
        settings === undefined ? undefined : JSON.stringify(settings),
      );
    });
  }

  /** A page of audit events, oldest first; page tokens are the last event id. */
  listAudit(
    caller: Caller,
    query: {
      tenantId?: string;
      since?: number;
      until?: number;
      principalId?: string;
      action?: string;
      pageSize: number;
      pageToken: string;
    },
  ): { events: AuditRecord[]; nextPageToken: string } {
    const principal = this.#audit.authorize(
      caller,
      "audit.read",
      query.tenantId === undefined ? {} : { tenantId: query.tenantId },
    );
    if (query.tenantId === undefined && !principal.serverAdmin) {
      throw invalidRequest("tenant_id is required");
    }
    const after = query.pageToken === "" ? undefined : Number(query.pageToken);
    if (after !== undefined && !(Number.isSafeInteger(after) && after >= 0)) {
      throw invalidRequest("page_token is not valid");
    }
    const limit = Math.min(query.pageSize === 0 ? 100 : query.pageSize, 1000);
    const events = this.#store.queryAudit({ ...query, afterEventId: after, limit: limit + 1 });
    const page = events.slice(0, limit);
    const last = page[page.length - 1];
    return {
      events: page,
      nextPageToken: events.length > limit && last !== undefined ? String(last.eventId) : "",
    };
  }

  /** Drops cached tokens of a deleted tenant's principals. */
  forgetTenant(tenantId: string): void {
    for (const principalId of [...this.#tokensOf.keys()]) {
      if (principalId.startsWith(`${tenantId}/`) || principalId.includes(`:${tenantId}/`)) {
        this.#revokeAllOf(principalId);
        this.#principals.delete(principalId);
      }
    }
    // Also those cached without a token (e.g. after a failed login): a namesake must not inherit grants.
    for (const id of [...this.#principals.keys()])
      if (id.startsWith(`${tenantId}/`)) this.#principals.delete(id);
  }

  /** Stops expiry timers (server shutdown). */
  close(): void {
    clearInterval(this.#sweeper);
  }

  // ---- internals ----

  #changeGrant(
    caller: Caller,
    action: string,
    request: { tenantId: string; principalName: string; permission: string; servicePrefix: string },
    change: (record: {
      principalId: string;
      tenantId: string;
      permission: string;
      servicePrefix: string;
    }) => void,
  ): void {
    const { tenantId, principalName, permission, servicePrefix } = request;
    this.#audit.authorize(caller, "identity.manage", { tenantId });
    validate("principal", principalName);
    if (!GRANT_PERMISSIONS.includes(permission as GrantPermission))
      throw invalidRequest(`unknown permission ${permission}`);
    if (servicePrefix !== "" && !/^[A-Za-z0-9._-]{1,128}$/.test(servicePrefix))
      throw invalidRequest("service_prefix is not valid");
    const principalId = `${tenantId}/${principalName}`;
    const resource = `${principalId} ${permission}${servicePrefix ? `:${servicePrefix}` : ""}`;
    this.#audit.audited(caller, action, tenantId, resource, () => {
      if (this.#store.getPrincipal(principalId) === undefined)
        throw notFound(`principal ${principalName} in tenant ${tenantId}`);
      change({ principalId, tenantId, permission, servicePrefix });
    });
    // Once committed, so that callers never hold grants the store has not.
    const shared = this.#principals.get(principalId);
    if (shared !== undefined) shared.grants = this.#grantsOf(principalId);
  }

  #grantsOf(principalId: string): Grant[] {
    return this.#store.grantsOf(principalId).map((g) => ({
      tenantId: g.tenantId,
      permission: g.permission as GrantPermission,
      servicePrefix: g.servicePrefix,
    }));
  }

  /** The shared principal object of a stored principal. */
  #principal(principalId: string): Principal | undefined {
    const cached = this.#principals.get(principalId);
    if (cached !== undefined) return cached;
    const record = this.#store.getPrincipal(principalId);
    if (record === undefined) return undefined;
    const principal: Principal = {
      id: principalId,
      serverAdmin: false,
      tenantId: record.tenantId,
      name: record.name,
      grants: this.#grantsOf(principalId),
    };
    this.#principals.set(principalId, principal);
    return principal;
  }

  async #verify(
    tenantId: string,
    credential: Credential,
  ): Promise<{ principal: Principal; expiresAt?: number; ephemeral: boolean } | undefined> {
    if (credential.kind === "api_key" && credential.key === this.#adminToken) {
      return { principal: SERVER_ADMIN, ephemeral: false };
    }
    if (describeInvalidName("tenant", tenantId) !== undefined) return undefined;
    if (credential.kind === "api_key") {
      // Resolved as the same key sent as a bearer is: checked against the
      // store and hashed once, then a map lookup until it is revoked. No
      // look-up of the tenant: a key lives only as long as its tenant
      // (deleting a tenant deletes its keys and forgets their resolutions).
      const principal = credential.key.startsWith(API_KEY_PREFIX)
        ? this.#resolve(credential.key)?.principal
        : undefined;
      return principal !== undefined && principal.tenantId === tenantId
        ? { principal, ephemeral: false }
        : undefined;
    }
    if (this.#store.getTenant(tenantId) === undefined) return undefined;
    switch (credential.kind) {
      case "password": {
        if (
          credential.password.length > MAX_SECRET_LENGTH ||
          describeInvalidName("principal", credential.username) !== undefined
        ) {
          await verifyPassword("", undefined);
          return undefined;
        }
        const record = this.#store.getPrincipal(`${tenantId}/${credential.username}`);
        if (!(await verifyPassword(credential.password, record?.passwordHash))) return undefined;
        const principal = this.#principal(`${tenantId}/${credential.username}`);
        return principal === undefined ? undefined : { principal, ephemeral: false };
      }
      case "jwt": {
        const settings = this.#store.getJwtConfig(tenantId);
        if (settings === undefined || credential.token.length > MAX_SECRET_LENGTH * 4)
          return undefined;
        const verified = await verifyJwt(
          credential.token,
          JSON.parse(settings) as JwtSettings,
          tenantId,
        );
        if (verified === undefined || verified.expiresAt <= this.#now()) return undefined;
        const principal: Principal = {
          id: `jwt:${tenantId}/${verified.subject}`,
          serverAdmin: false,
          tenantId,
          name: verified.subject,
          grants: verified.grants,
        };
        return { principal, expiresAt: verified.expiresAt, ephemeral: true };
      }
      case "custom": {
        if (this.#custom === undefined) return undefined;
        const result = await Promise.resolve(
          this.#custom.verify({ tenantId, data: credential.data }),
        ).catch(() => undefined);
        if (result === undefined || typeof result.subject !== "string" || result.subject === "")
          return undefined;
        const grants = parseGrantStrings(
          Array.isArray(result.permissions) ? result.permissions : [],
          tenantId,
        );
        const principal: Principal = {
          id: `custom:${tenantId}/${result.subject}`,
          serverAdmin: false,
          tenantId,
          name: result.subject,
          grants,
        };
        return { principal, ephemeral: true };
      }
    }
  }

  #verifyApiKey(key: string): Principal | undefined {
    const parsed = parseApiKey(key);
    if (parsed === undefined) return undefined;
    const record = this.#store.getApiKey(parsed.keyId);
    if (record === undefined || record.revokedAt !== undefined) return undefined;
    if (!sameDigest(record.secretHash, sha256Hex(parsed.secret))) return undefined;
    return this.#principal(record.principalId);
  }

  /** Stores a new session; it is cached at its first use (#lookup), not before. */
  #storeSession(tenantId: string, session: Session, ephemeral: boolean): void {
    this.#store.insertSession({
      tokenHash: sha256Hex(session.token),
      tenantId,
      principalId: session.principal.id,
      grantsJson: ephemeral ? JSON.stringify(session.principal.grants) : undefined,
      expiresAt: session.expiresAt,
    });
  }

  #resolve(token: string): Resolved | undefined {
    const cached = this.#resolved.get(token);
    if (cached !== undefined) {
      if (cached.expiresAt > this.#now()) return cached;
      this.#forgetToken(token, true);
      return undefined;
    }
    const found = this.#lookup(token);
    if (found !== undefined) this.#cache(token, found);
    return found;
  }

  /** A token not seen since start: a stored session or an API key. */
  #lookup(token: string): Resolved | undefined {
    if (token.length > MAX_SECRET_LENGTH) return undefined;
    if (token.startsWith(API_KEY_PREFIX)) {
      const principal = this.#verifyApiKey(token);
      return principal === undefined
        ? undefined
        : { principal, expiresAt: Infinity, controller: new AbortController() };
    }
    if (!token.startsWith(SESSION_PREFIX)) return undefined;
    const session = this.#store.getSession(sha256Hex(token));
    if (session === undefined || session.expiresAt <= this.#now()) return undefined;
    const principal =
      session.grantsJson === undefined
        ? session.principalId === SERVER_ADMIN.id
          ? SERVER_ADMIN
          : this.#principal(session.principalId)
        : {
            id: session.principalId,
            serverAdmin: false,
            tenantId: session.tenantId,
            name: session.principalId.slice(session.principalId.indexOf("/") + 1),
            grants: JSON.parse(session.grantsJson) as Grant[],
          };
    return principal === undefined
      ? undefined
      : { principal, expiresAt: session.expiresAt, controller: new AbortController() };
  }

  #cache(token: string, resolved: Resolved): void {
    this.#resolved.set(token, resolved);
    let tokens = this.#tokensOf.get(resolved.principal.id);
    if (tokens === undefined) {
      tokens = new Set();
      this.#tokensOf.set(resolved.principal.id, tokens);
    }
    tokens.add(token);
  }

  /** Ends streams whose token expired (calls check expiry themselves). */
  #sweepExpired(): void {
    const now = this.#now();
    for (const [token, resolved] of this.#resolved) {
      if (resolved.expiresAt <= now) this.#forgetToken(token, true);
    }
  }

  #forgetToken(token: string, abort: boolean): void {
    const resolved = this.#resolved.get(token);
    if (resolved === undefined) return;
    this.#resolved.delete(token);
    this.#tokensOf.get(resolved.principal.id)?.delete(token);
    if (abort)
      resolved.controller.abort(
        new CommyError("UNAUTHORIZED", "the credential was revoked or expired"),
      );
  }

  #revokeAllOf(principalId: string): void {
    for (const token of [...(this.#tokensOf.get(principalId) ?? [])])
      this.#forgetToken(token, true);
    this.#tokensOf.delete(principalId);
  }

  #revokeSessionsOf(principalId: string): void {
    for (const token of [...(this.#tokensOf.get(principalId) ?? [])]) {
      if (token.startsWith(SESSION_PREFIX)) this.#forgetToken(token, true);
    }
  }

  #tenantExists(tenantId: string): void {
    if (this.#store.getTenant(tenantId) === undefined) throw notFound(`tenant ${tenantId}`);
  }
}

/** A principal as the API shows it. */
export interface PrincipalView {
  principalId: string;
  tenantId: string;
  name: string;
  createdBy: string;
  createdAt: number;
  hasPassword: boolean;
}

function view(record: {
  principalId: string;
  tenantId: string;
  name: string;
  passwordHash: string | undefined;
  createdBy: string;
  createdAt: number;
}): PrincipalView {
  return {
    principalId: record.principalId,
    tenantId: record.tenantId,
    name: record.name,
    createdBy: record.createdBy,
    createdAt: record.createdAt,
    hasPassword: record.passwordHash !== undefined,
  };
}

/** A session with a new token, not stored yet. */
function newSession(principal: Principal, expiresAt: number): Session {
  return { token: newSessionToken(), expiresAt, principal };
}

function validate(kind: string, name: string): void {
  const problem = describeInvalidName(kind, name);
  if (problem !== undefined) throw invalidRequest(problem);
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH)
    throw invalidRequest(`a password needs at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_SECRET_LENGTH) throw invalidRequest("the password is too long");
}

/** The token of an "Authorization: Bearer <token>" header. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  if (authorization === undefined || authorization === null) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match === null ? undefined : match[1];
}

/** True unless `id` is "<tenant>/<name>" with two valid names. */
function isInvalidPrincipalId(id: string): boolean {
  const [tenantId = "", name = "", ...rest] = id.split("/");
  return (
    rest.length > 0 ||
    describeInvalidName("tenant", tenantId) !== undefined ||
    describeInvalidName("principal", name) !== undefined
  );
}
