/**
 * The Commy client library: `createCommyClient` for a server over
 * Connect, `LocalService` for a service's file mapped by a process on the
 * server's machine, and the one error type, CommyError, with guards that
 * narrow it to a code.
 *
 * ```ts
 * const client = createCommyClient({ baseUrl: "http://127.0.0.1:8080", token });
 * const { data, version } = await client.readVariable({ tenantId, serviceName, variableName });
 * for await (const change of client.subscribe({ tenantId, serviceName })) { … }
 * ```
 */
export {
  type AllocateOptions,
  type CommyClient,
  type CommyClientOptions,
  type CreateApiKeyOptions,
  type CreatePrincipalOptions,
  DEFAULT_TIMEOUT_MS,
  type ListAuditEventsOptions,
  type ListGrantsOptions,
  type OpenLocalOptions,
  type Page,
  type PageOptions,
  type PrincipalRef,
  type ServiceInfo,
  type ServiceRef,
  type TenantInfo,
  type VariableInfo,
  type VariableRef,
  type VersionedValue,
  type WriteOptions,
  createCommyClient,
} from "./commy-client.js";
export { type CallOptions, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./call-policy.js";
export {
  CommyError,
  type CommyErrorOf,
  type ErrorCode,
  isAlreadyExists,
  isCommyError,
  isConnectionLost,
  isInternal,
  isInvalidRequest,
  isNotFound,
  isPermissionDenied,
  isResourceExhausted,
  isTimeout,
  isUnauthorized,
  isVersionConflict,
} from "./client-errors.js";
export type {
  ApiKeyInfo,
  AuditEventInfo,
  AuditFilter,
  CallerInfo,
  CreatedApiKey,
  PrincipalGrant,
  PrincipalInfo,
} from "./identity-admin.js";
// Types only: the class (and the native mmap module under it) is loaded by
// openLocal, so that remote-only programs never need the addon.
export type {
  LocalValue,
  LocalWriteOptions,
  LocalService,
  ServiceFileLocation,
} from "./local-service.js";
export {
  type Credential,
  type Grant,
  type GrantPermission,
  type RefreshedToken,
  type Session,
} from "./session.js";
export {
  type ChangeKindName,
  DEFAULT_RECONNECT_POLICY,
  type ReconnectPolicy,
  type SubscribeOptions,
  type SubscribeTarget,
  Subscription,
  type VariableChange,
} from "./subscription.js";
