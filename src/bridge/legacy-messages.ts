/**
 * The legacy WebSocket JSON protocol's messages (shared/legacy-ws-protocol.md
 * §2–3): client frames parsed and checked against a small schema per type,
 * server messages encoded in the envelope the legacy SDK parses.
 */
import type { Credential } from "../core/identity.js";

/** Fields every client message may carry: a `request_id` turns on extended mode. */
interface Envelope {
  requestId?: string;
}

export type ClientMessage = Envelope &
  (
    | { type: "Authenticate"; tenantId: string; credential: Credential }
    | { type: "CreateTenant"; tenantId: string; tenantName?: string }
    | { type: "DeleteTenant"; tenantId: string }
    | {
        type: "CreateService" | "GetService" | "DeleteService" | "GetServiceFilePath";
        tenantId: string;
        serviceName: string;
      }
    | { type: "AllocateVariable"; serviceId: string; variableName: string; initialData: Uint8Array }
    | { type: "WriteVariable"; serviceId: string; variableName: string; data: Uint8Array }
    | {
        type: "ReadVariable" | "DeallocateVariable" | "Subscribe" | "Unsubscribe";
        serviceId: string;
        variableName: string;
      }
    | { type: "Heartbeat" | "Disconnect" }
    | {
        type: "ReportVariableChanges";
        serviceId: string;
        changedVariables: string[];
        newValues: [string, Uint8Array][];
      }
  );

export type ClientMessageType = ClientMessage["type"];

/** The fields of the message of type T (some members share a shape among several types). */
type FieldsOf<T extends ClientMessageType> = ClientMessage extends infer M
  ? M extends { type: infer U }
    ? T extends U
      ? Omit<M, "type" | "requestId">
      : never
    : never
  : never;

/** A frame that is not a valid client message; `requestId` when one could be read. */
export interface InvalidMessage {
  problem: string;
  requestId?: string;
  type?: string;
}

export type ParsedMessage = { message: ClientMessage } | { invalid: InvalidMessage };

type Data = Record<string, unknown>;

/** Reads one field of `data`, or says what is wrong with it. */
class FieldReader {
  constructor(
    private readonly type: string,
    private readonly data: Data,
  ) {}

  string(field: string): string {
    const value = this.data[field];
    if (typeof value !== "string") throw this.#wrong(field, "a string", value);
    return value;
  }

  optionalString(field: string): string | undefined {
    return this.#absent(field) ? undefined : this.string(field);
  }

  bytes(field: string): Uint8Array {
    const value = this.data[field];
    const bytes = toBytes(value);
    if (bytes === undefined) throw this.#wrong(field, "an array of integers 0–255", value);
    return bytes;
  }

  optionalBytes(field: string): Uint8Array {
    return this.#absent(field) ? new Uint8Array(0) : this.bytes(field);
  }

  strings(field: string): string[] {
    const value = this.data[field];
    if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
      throw this.#wrong(field, "an array of strings", value);
    }
    return value as string[];
  }

  pairs(field: string): [string, Uint8Array][] {
    const value = this.data[field];
    const wrong = (): Error => this.#wrong(field, "an array of [name, bytes] pairs", value);
    if (!Array.isArray(value)) throw wrong();
    return value.map((pair: unknown): [string, Uint8Array] => {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string") throw wrong();
      const bytes = toBytes(pair[1]);
      if (bytes === undefined) throw wrong();
      return [pair[0], bytes];
    });
  }

  any(field: string): unknown {
    return this.data[field] ?? null;
  }

  #absent(field: string): boolean {
    return this.data[field] === undefined || this.data[field] === null;
  }

  #wrong(field: string, expected: string, value: unknown): Error {
    const got =
      value === undefined || value === null
        ? "it is missing"
        : Array.isArray(value)
          ? "got an array with other elements"
          : `got a ${jsonKind(value)}`;
    return new Error(`${this.type}: data.${field} must be ${expected} (${got})`);
  }
}

/** A JSON array of integers 0–255 as bytes, or undefined when it is anything else. */
function toBytes(value: unknown): Uint8Array | undefined {
  if (!Array.isArray(value)) return undefined;
  const bytes = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) {
    const byte: unknown = value[i];
    if (typeof byte !== "number" || !Number.isInteger(byte) || byte < 0 || byte > 255) {
      return undefined;
    }
    bytes[i] = byte;
  }
  return bytes;
}

function jsonKind(value: unknown): string {
  if (Array.isArray(value)) return "array";
  return typeof value === "object" ? "object" : typeof value;
}

function credentialOf(read: FieldReader): Credential {
  const method = read.string("method");
  switch (method) {
    case "api_key":
      return { kind: "api_key", key: read.string("key") };
    case "jwt":
      return { kind: "jwt", token: read.string("token") };
    case "basic":
      return {
        kind: "password",
        username: read.string("username"),
        password: read.string("password"),
      };
    case "custom":
      return { kind: "custom", data: read.any("data") };
    default:
      throw new Error(
        `Authenticate: data.method must be one of api_key, jwt, basic, custom (got ${JSON.stringify(method)})`,
      );
  }
}

const serviceRef = (read: FieldReader) => ({
  tenantId: read.string("tenant_id"),
  serviceName: read.string("service_name"),
});

const variableRef = (read: FieldReader) => ({
  serviceId: read.string("service_id"),
  variableName: read.string("variable_name"),
});

/** The schema of each client message: how its `data` becomes a ClientMessage. */
const READERS: { [T in ClientMessageType]: (read: FieldReader) => FieldsOf<T> } = {
  Authenticate: (read) => ({ tenantId: read.string("tenant_id"), credential: credentialOf(read) }),
  CreateTenant: (read) => ({
    tenantId: read.string("tenant_id"),
    tenantName: read.optionalString("tenant_name"),
  }),
  DeleteTenant: (read) => ({ tenantId: read.string("tenant_id") }),
  CreateService: serviceRef,
  GetService: serviceRef,
  DeleteService: serviceRef,
  GetServiceFilePath: serviceRef,
  AllocateVariable: (read) => ({
    ...variableRef(read),
    initialData: read.optionalBytes("initial_data"),
  }),
  WriteVariable: (read) => ({ ...variableRef(read), data: read.bytes("data") }),
  ReadVariable: variableRef,
  DeallocateVariable: variableRef,
  Subscribe: variableRef,
  Unsubscribe: variableRef,
  // client_id means nothing to the server, but a wrong type is still a wrong type.
  Heartbeat: (read) => (read.optionalString("client_id"), {}),
  Disconnect: (read) => (read.optionalString("client_id"), {}),
  ReportVariableChanges: (read) => ({
    serviceId: read.string("service_id"),
    changedVariables: read.strings("changed_variables"),
    newValues: read.pairs("new_values"),
  }),
};

const TYPES = Object.keys(READERS) as ClientMessageType[];

function isClientType(type: string): type is ClientMessageType {
  return Object.hasOwn(READERS, type);
}

/** Parses one text frame. Never throws: what is wrong is said in `invalid.problem`. */
export function parseClientMessage(text: string): ParsedMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // V8's message quotes the input, which may hold a credential: not in replies, not in logs.
    return { invalid: { problem: "the frame is not valid JSON" } };
  }
  if (!isObject(parsed)) {
    return { invalid: { problem: `a message must be a JSON object (got a ${jsonKind(parsed)})` } };
  }
  const data = parsed.data ?? {};
  const requestId = isObject(data) ? data.request_id : undefined;
  if (requestId !== undefined && requestId !== null && typeof requestId !== "string") {
    return { invalid: { problem: "data.request_id must be a string" } };
  }
  const envelope = typeof requestId === "string" ? { requestId } : {};
  const type = parsed.type;
  if (typeof type !== "string") {
    return { invalid: { ...envelope, problem: 'a message needs a "type" string' } };
  }
  if (!isClientType(type)) {
    return {
      invalid: {
        ...envelope,
        type,
        problem: `unknown message type ${JSON.stringify(type)}; known types: ${TYPES.join(", ")}`,
      },
    };
  }
  if (!isObject(data)) {
    return { invalid: { ...envelope, type, problem: `${type}: data must be a JSON object` } };
  }
  try {
    const fields = READERS[type](new FieldReader(type, data));
    return { message: { type, ...envelope, ...fields } as ClientMessage };
  } catch (error) {
    return { invalid: { ...envelope, type, problem: (error as Error).message } };
  }
}

function isObject(value: unknown): value is Data {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- server messages ----

/** The legacy protocol's error codes, exactly as the SDK parses them. */
export type LegacyErrorCode =
  | "NOT_FOUND"
  | "PERMISSION_DENIED"
  | "UNAUTHORIZED"
  | "ALREADY_EXISTS"
  | "INVALID_REQUEST"
  | "INTERNAL_ERROR"
  | "CONNECTION_LOST"
  | "TIMEOUT";

export interface ServiceMessage {
  service_id: string;
  service_name: string;
  tenant_id: string;
  file_path?: string;
}

export interface VariableMessage {
  service_id: string;
  variable_name: string;
  data: Uint8Array;
  version: number;
}

/** What the server sends (shared/legacy-ws-protocol.md §3). */
export type ServerMessage =
  | {
      type: "AuthenticationResult";
      data: { success: boolean; message: string; server_version: string; permissions?: string[] };
    }
  | { type: "Service"; data: ServiceMessage }
  | { type: "TenantResult"; data: { success: boolean; tenant_id: string; message: string } }
  | { type: "VariableData" | "VariableChanged"; data: VariableMessage }
  | { type: "Result"; data: { request_id: string; success: boolean; message: string } }
  | { type: "Error"; data: { code: LegacyErrorCode; message: string } }
  | { type: "Disconnected"; data: { reason: string } }
  | { type: "ServiceFilePath"; data: { service_id: string; file_path: string; file_size: number } }
  | {
      type: "VariableChangesAcknowledged";
      data: { service_id: string; changed_variables: string[] };
    }
  | { type: "Heartbeat"; data: { timestamp: string } };

/**
 * One server message as a text frame. Bytes become arrays of integers;
 * `requestId` (extended mode) is echoed in `data`.
 */
export function encodeServerMessage(message: ServerMessage, requestId?: string): string {
  const data: Record<string, unknown> = { ...message.data };
  if ("data" in message.data && message.data.data instanceof Uint8Array) {
    data.data = Array.from(message.data.data);
  }
  if (requestId !== undefined) data.request_id = requestId;
  return JSON.stringify({ type: message.type, data });
}
