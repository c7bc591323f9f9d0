/**
 * One legacy WebSocket connection: each client message becomes the core
 * operation its RPC uses, and the result becomes the reply the legacy SDK
 * parses (shared/legacy-ws-protocol.md §4). Transport-free: the bridge
 * hands in text frames one at a time and a peer to answer through.
 *
 * Legacy mode answers in request order and never speaks unasked. Extended
 * mode (a `request_id` in `data`) answers every message and delivers
 * VariableChanged pushes from a WatchSession — the same change path and
 * ordering as the Connect Watch stream.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Caller } from "../core/caller.js";
import type { CommyCore, ServiceRef } from "../core/commy-core.js";
import { CommyError, isCommyError, invalidRequest, notFound } from "../core/commy-error.js";
import type { Identity } from "../core/identity.js";
import { WatchSession, type WatchSessionOptions } from "../core/watch-session.js";
import { legacyError } from "./legacy-errors.js";
import {
  type ClientMessage,
  type ClientMessageType,
  type ServerMessage,
  encodeServerMessage,
  parseClientMessage,
} from "./legacy-messages.js";

/** Where replies go: the transport's side of a connection. */
export interface LegacyPeer {
  /** "ip:port": for the audit log, and whether it is on the server's machine. */
  readonly address: string;
  send(text: string): void;
  /** Resolves once what was sent is on its way (undefined when nothing waits). */
  drained(): Promise<void> | undefined;
  close(code: number, reason: string): void;
}

export interface LegacyConnectionDependencies {
  core: CommyCore;
  identity: Identity;
  log: Logger;
  serverVersion: string;
  watchLimits?: WatchSessionOptions;
  /** Told of every message handled: its type and "ok" or the error code sent (or not sent). */
  onMessage?: (type: string, result: string) => void;
}

/** The messages the legacy SDK sends without waiting for an answer. */
const UNANSWERED_IN_LEGACY_MODE: ReadonlySet<ClientMessageType> = new Set([
  "WriteVariable",
  "Subscribe",
  "Unsubscribe",
  "Disconnect",
]);

/** A message naming a variable by its service's id. */
interface VariableMessage {
  requestId?: string;
  serviceId: string;
  variableName: string;
}

/** What an empty AllocateVariable allocates (the legacy server's default). */
const DEFAULT_INITIAL_DATA = new Uint8Array(8);

/** An extended-mode Subscribe waiting for its WatchSession's answer. */
interface PendingSubscribe {
  requestId: string | undefined;
  key: string;
  serviceId: string;
  resolve: () => void;
}

/** The pushes of one tenant: one WatchSession per tenant, as its caller differs. */
interface TenantWatch {
  session: WatchSession;
  /** serviceId + variable name → subscription id. */
  subscriptions: Map<string, number>;
  /** subscription id → the service id its pushes carry. */
  serviceIds: Map<number, string>;
  pending: Map<string, PendingSubscribe>;
}

export class LegacyConnection {
  readonly #deps: LegacyConnectionDependencies;
  readonly #peer: LegacyPeer;
  readonly #log: Logger;
  /** tenantId → session token from Authenticate. */
  readonly #tokens = new Map<string, string>();
  /** A server admin's session answers for any tenant (legacy-ws-protocol.md §4.4). */
  #adminToken: string | undefined;
  readonly #watches = new Map<string, TenantWatch>();
  #nextInternalId = 1;
  #closed = false;
  #extended = false;

  constructor(deps: LegacyConnectionDependencies, peer: LegacyPeer) {
    this.#deps = deps;
    this.#peer = peer;
    this.#log = deps.log;
  }

  /** Subscriptions that push (extended mode). */
  get subscriptionCount(): number {
    let count = 0;
    for (const watch of this.#watches.values()) count += watch.subscriptions.size;
    return count;
  }

  /** True once the client has sent a message in extended mode. */
  get extended(): boolean {
    return this.#extended;
  }

  /** Answers one text frame; the caller awaits it before handing in the next. */
  async handle(text: string): Promise<void> {
    const parsed = parseClientMessage(text);
    if ("invalid" in parsed) {
      const { problem, requestId, type } = parsed.invalid;
      this.#log.debug({ problem, type }, "legacy: invalid message");
      this.#deps.onMessage?.(type ?? "invalid", "INVALID_REQUEST");
      if (requestId === undefined && type !== undefined && this.#unanswered(type)) return;
      this.#send(legacyError(invalidRequest(problem)), requestId);
      return;
    }
    const message = parsed.message;
    if (message.requestId !== undefined) this.#extended = true;
    let reply: ServerMessage | undefined;
    try {
      reply = await this.#run(message);
    } catch (error) {
      reply = legacyError(error);
      if (!(error instanceof CommyError)) {
        this.#log.error({ err: error, type: message.type }, "legacy: internal error");
      }
    }
    this.#deps.onMessage?.(message.type, reply?.type === "Error" ? reply.data.code : "ok");
    if (message.requestId === undefined && UNANSWERED_IN_LEGACY_MODE.has(message.type)) {
      // The SDK waits for no answer here: one would be taken as the reply to its next call.
      if (reply?.type === "Error") {
        this.#log.info({ type: message.type, code: reply.data.code }, reply.data.message);
      }
    } else if (reply !== undefined) {
      this.#send(reply, message.requestId);
    }
    if (message.type === "Disconnect") this.#peer.close(1000, "disconnected by the client");
  }

  /** The connection is gone: stop its pushes and end its sessions. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const watch of this.#watches.values()) watch.session.close();
    this.#watches.clear();
    for (const token of new Set([...this.#tokens.values(), this.#adminToken])) {
      if (token !== undefined) this.#logout(token);
    }
    this.#tokens.clear();
  }

  // ---- messages ----

  async #run(message: ClientMessage): Promise<ServerMessage | undefined> {
    switch (message.type) {
      case "Authenticate":
        return this.#authenticate(message.tenantId, message);
      case "CreateTenant": {
        const tenant = this.#deps.core.createTenant(this.#callerIn(message.tenantId), message);
        return tenantResult(tenant.tenantId, `created tenant ${tenant.tenantId}`);
      }
      case "DeleteTenant":
        this.#deps.core.deleteTenant(this.#callerIn(message.tenantId), message.tenantId);
        return this.#result(message, `deleted tenant ${message.tenantId}`);
      case "CreateService": {
        const caller = this.#callerIn(message.tenantId);
        return this.#service(caller, await this.#deps.core.createService(caller, message));
      }
      case "GetService": {
        const caller = this.#callerIn(message.tenantId);
        return this.#service(caller, this.#deps.core.getService(caller, message));
      }
      case "DeleteService":
        await this.#deps.core.deleteService(this.#callerIn(message.tenantId), message);
        return this.#result(message, `deleted service ${message.serviceName}`);
      case "GetServiceFilePath":
        return this.#serviceFilePath(message);
      case "AllocateVariable": {
        const { ref, caller } = this.#serviceById(message.serviceId);
        const initialData =
          message.initialData.length === 0 ? DEFAULT_INITIAL_DATA : message.initialData;
        const info = this.#deps.core.allocateVariable(caller, {
          ...ref,
          variableName: message.variableName,
          initialData,
        });
        return variableData(
          "VariableData",
          message.serviceId,
          info.name,
          initialData,
          info.version,
        );
      }
      case "ReadVariable": {
        const { ref, caller } = this.#serviceById(message.serviceId);
        const value = this.#deps.core.readVariable(caller, {
          ...ref,
          variableName: message.variableName,
        });
        return variableData(
          "VariableData",
          message.serviceId,
          message.variableName,
          value.data,
          value.version,
        );
      }
      case "WriteVariable": {
        const { ref, caller } = this.#serviceById(message.serviceId);
        const written = await this.#deps.core.writeVariable(caller, {
          ...ref,
          variableName: message.variableName,
          data: message.data,
          createIfMissing: true,
        });
        return this.#result(message, `wrote version ${written.version}`);
      }
      case "DeallocateVariable": {
        const { ref, caller } = this.#serviceById(message.serviceId);
        await this.#deps.core.deallocateVariable(caller, {
          ...ref,
          variableName: message.variableName,
        });
        return this.#result(message, `deallocated ${message.variableName}`);
      }
      case "Subscribe":
        return this.#subscribe(message);
      case "Unsubscribe":
        return this.#unsubscribe(message);
      case "Heartbeat":
        return { type: "Heartbeat", data: { timestamp: new Date().toISOString() } };
      case "Disconnect":
        return this.#result(message, "goodbye");
      case "ReportVariableChanges":
        return this.#reportChanges(message);
    }
  }

  async #authenticate(
    tenantId: string,
    message: Extract<ClientMessage, { type: "Authenticate" }>,
  ): Promise<ServerMessage> {
    const serverVersion = this.#deps.serverVersion;
    let session;
    try {
      session = await this.#deps.identity.authenticate(
        this.#anonymous(),
        tenantId,
        message.credential,
      );
    } catch (error) {
      if (!isCommyError(error, "UNAUTHORIZED")) throw error;
      return {
        type: "AuthenticationResult",
        data: { success: false, message: error.message, server_version: serverVersion },
      };
    }
    const previous = this.#tokens.get(tenantId);
    this.#tokens.set(tenantId, session.token);
    if (previous !== undefined && previous !== this.#adminToken) this.#logout(previous);
    if (session.principal.serverAdmin) this.#adminToken = session.token;
    const who = session.principal.name ?? session.principal.id;
    return {
      type: "AuthenticationResult",
      data: {
        success: true,
        message: `authenticated as ${who} in tenant ${tenantId}`,
        server_version: serverVersion,
        permissions: this.#deps.identity.permissionNames(session.principal, tenantId),
      },
    };
  }

  #service(
    caller: Caller,
    record: { serviceId: string; serviceName: string; tenantId: string },
  ): ServerMessage {
    const filePath = this.#deps.core.serviceFilePathIfReadable(caller, record);
    return {
      type: "Service",
      data: {
        service_id: record.serviceId,
        service_name: record.serviceName,
        tenant_id: record.tenantId,
        ...(filePath === undefined ? {} : { file_path: filePath }),
      },
    };
  }

  #serviceFilePath(message: ServiceRef): ServerMessage {
    const file = this.#deps.core.serviceFile(this.#callerIn(message.tenantId), message);
    return {
      type: "ServiceFilePath",
      data: { service_id: file.serviceId, file_path: file.path, file_size: file.size },
    };
  }

  async #reportChanges(
    message: Extract<ClientMessage, { type: "ReportVariableChanges" }>,
  ): Promise<ServerMessage> {
    const { ref, caller } = this.#serviceById(message.serviceId);
    for (const [variableName, data] of message.newValues) {
      await this.#deps.core.writeVariable(caller, {
        ...ref,
        variableName,
        data,
        createIfMissing: true,
      });
    }
    return {
      type: "VariableChangesAcknowledged",
      data: { service_id: message.serviceId, changed_variables: message.changedVariables },
    };
  }

  // ---- subscriptions (pushes in extended mode only) ----

  async #subscribe(message: VariableMessage): Promise<ServerMessage | undefined> {
    const { ref, caller } = this.#serviceById(message.serviceId);
    const request = { ...ref, variableName: message.variableName };
    if (message.requestId === undefined) {
      // Legacy mode never pushes: the subscription is checked and goes no further.
      this.#deps.core.openSubscription(caller, request);
      return undefined;
    }
    const watch = this.#watchOf(ref.tenantId, caller);
    const key = subscriptionKey(message.serviceId, message.variableName);
    if (watch.subscriptions.has(key)) {
      return this.#result(message, `already subscribed to ${message.variableName}`);
    }
    const internalId = String(this.#nextInternalId++);
    const answered = new Promise<void>((resolve) =>
      watch.pending.set(internalId, {
        requestId: message.requestId,
        key,
        serviceId: message.serviceId,
        resolve,
      }),
    );
    watch.session.subscribe(internalId, request);
    // The pump sends the answer, ahead of the pushes it opens the way for.
    await answered;
    return undefined;
  }

  #unsubscribe(message: VariableMessage): ServerMessage {
    const { ref } = this.#serviceById(message.serviceId);
    const watch = this.#watches.get(ref.tenantId);
    const key = subscriptionKey(message.serviceId, message.variableName);
    const subscriptionId = watch?.subscriptions.get(key);
    if (watch === undefined || subscriptionId === undefined) {
      throw notFound(`a subscription to ${message.variableName}`);
    }
    watch.subscriptions.delete(key);
    watch.serviceIds.delete(subscriptionId);
    // Its answer is not awaited: pushes still queued are dropped by the pump.
    watch.session.unsubscribe("", subscriptionId);
    return this.#result(message, `unsubscribed from ${message.variableName}`);
  }

  #watchOf(tenantId: string, caller: Caller): TenantWatch {
    const existing = this.#watches.get(tenantId);
    if (existing !== undefined) return existing;
    const watch: TenantWatch = {
      session: new WatchSession(this.#deps.core, caller, this.#deps.watchLimits),
      subscriptions: new Map(),
      serviceIds: new Map(),
      pending: new Map(),
    };
    this.#watches.set(tenantId, watch);
    void this.#pump(tenantId, watch);
    return watch;
  }

  /** Sends a tenant's WatchSession events until it ends, waiting while the socket is full. */
  async #pump(tenantId: string, watch: TenantWatch): Promise<void> {
    try {
      for (;;) {
        const events = await watch.session.take();
        if (events === undefined) break;
        for (const event of events) {
          if (event.type === "reply") this.#answerSubscribe(watch, event);
          else if (event.type === "change") {
            const { change } = event;
            const serviceId = watch.serviceIds.get(change.subscriptionId);
            // The legacy protocol has no deletion push; a later write pushes again.
            if (serviceId === undefined || change.kind === "deleted") continue;
            this.#send(
              variableData(
                "VariableChanged",
                serviceId,
                change.variableName,
                change.data,
                change.version,
              ),
            );
          } else if (event.type === "ended") {
            this.#forgetSubscription(watch, event.subscriptionId);
            this.#log.info({ code: event.reason.code }, `legacy: ${event.reason.message}`);
          }
        }
        await this.#peer.drained();
      }
    } finally {
      if (this.#watches.get(tenantId) === watch) this.#watches.delete(tenantId);
      const reason =
        watch.session.endedWith ?? new CommyError("CONNECTION_LOST", "the subscription ended");
      for (const pending of watch.pending.values()) {
        if (!this.#closed) this.#send(legacyError(reason), pending.requestId);
        pending.resolve();
      }
      watch.pending.clear();
    }
  }

  #answerSubscribe(
    watch: TenantWatch,
    reply: { requestId: string; error?: CommyError; subscriptionId?: number },
  ): void {
    const pending = watch.pending.get(reply.requestId);
    if (pending === undefined) return;
    watch.pending.delete(reply.requestId);
    if (reply.error !== undefined || reply.subscriptionId === undefined) {
      this.#send(legacyError(reply.error), pending.requestId);
    } else {
      watch.subscriptions.set(pending.key, reply.subscriptionId);
      watch.serviceIds.set(reply.subscriptionId, pending.serviceId);
      this.#send(resultMessage(pending.requestId, "subscribed"), pending.requestId);
    }
    pending.resolve();
  }

  #forgetSubscription(watch: TenantWatch, subscriptionId: number): void {
    watch.serviceIds.delete(subscriptionId);
    for (const [key, id] of watch.subscriptions) {
      if (id === subscriptionId) watch.subscriptions.delete(key);
    }
  }

  // ---- callers ----

  #anonymous(): Caller {
    return { principal: undefined, clientAddress: this.#peer.address };
  }

  /**
   * The caller for a request naming `tenantId`: that tenant's session, else
   * a server admin's, else any session of the connection — authenticated,
   * so that what it may not do is PERMISSION_DENIED, as over Connect. Only
   * a connection without any session is anonymous (UNAUTHORIZED).
   */
  #callerIn(tenantId: string): Caller {
    const token =
      this.#tokens.get(tenantId) ?? this.#adminToken ?? this.#tokens.values().next().value;
    if (token === undefined) return this.#anonymous();
    return this.#deps.identity.callerFor(`Bearer ${token}`, this.#peer.address);
  }

  /**
   * The service a variable message names by id, and the caller to act as.
   * A service of a tenant this connection holds no session for is "not
   * found", like an unknown id: a client never learns what exists in a
   * tenant it may not look into. Without any session: UNAUTHORIZED.
   */
  #serviceById(serviceId: string): { ref: ServiceRef; caller: Caller } {
    const ref = this.#deps.core.serviceRefById(serviceId);
    if (ref !== undefined && (this.#tokens.has(ref.tenantId) || this.#adminToken !== undefined)) {
      return { ref, caller: this.#callerIn(ref.tenantId) };
    }
    // Asked of the core so that the refusal is audited like any other.
    if (this.#tokens.size === 0) this.#deps.identity.whoAmI(this.#anonymous());
    throw notFound(`service ${serviceId}`);
  }

  #logout(token: string): void {
    try {
      const caller = this.#deps.identity.callerFor(`Bearer ${token}`, this.#peer.address);
      if (caller.principal !== undefined) this.#deps.identity.logout(caller, token);
    } catch (error) {
      // Expired meanwhile (nothing left to end), or the server is stopping.
      if (!isCommyError(error, "UNAUTHORIZED")) {
        this.#log.warn({ err: error }, "legacy: could not end a session");
      }
    }
  }

  // ---- replies ----

  #unanswered(type: string): boolean {
    return UNANSWERED_IN_LEGACY_MODE.has(type as ClientMessageType);
  }

  #result(message: { requestId?: string }, text: string): ServerMessage {
    return resultMessage(message.requestId, text);
  }

  #send(message: ServerMessage, requestId?: string): void {
    if (this.#closed) return;
    this.#peer.send(encodeServerMessage(message, requestId));
  }
}

function resultMessage(requestId: string | undefined, text: string): ServerMessage {
  // The SDK's Result needs a request_id even in legacy mode.
  return {
    type: "Result",
    data: { request_id: requestId ?? randomUUID(), success: true, message: text },
  };
}

function tenantResult(tenantId: string, text: string): ServerMessage {
  return { type: "TenantResult", data: { success: true, tenant_id: tenantId, message: text } };
}

function variableData(
  type: "VariableData" | "VariableChanged",
  serviceId: string,
  variableName: string,
  data: Uint8Array,
  version: number,
): ServerMessage {
  return {
    type,
    data: { service_id: serviceId, variable_name: variableName, data, version },
  };
}

function subscriptionKey(serviceId: string, variableName: string): string {
  return `${serviceId}\u0000${variableName}`;
}
