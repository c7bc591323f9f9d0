/**
 * What the legacy WebSocket bridge tests (test/bridge) share: servers
 * started with bridge limits, TLS or a custom verifier; a small client over
 * the `ws` package that keeps every frame in order and waits for the next
 * one with a bound; "nothing was sent" proved by a Heartbeat round trip
 * instead of a sleep; and a schema per server message type of the legacy
 * protocol (shared/legacy-ws-protocol.md §3), checked exactly as the legacy
 * SDK would parse it.
 */
import type { ClientRequestArgs } from "node:http";
import { WebSocket, type ClientOptions } from "ws";
import type { ServerExtras } from "../../src/server.js";
import { startServer } from "../../src/server.js";
import { testAdminToken } from "./identity-fixtures.js";
import {
  type TestServer,
  type TestServerConfig,
  createClientFactory,
  createTestDataDir,
} from "./test-server.js";

/** Default bound of every wait for a frame or a close. */
export const FRAME_WAIT_MS = 5_000;

// ---- servers ----

export interface BridgeServerOptions {
  /** Settings (bridge limits, TLS files…); host, port and data directory are the test's. */
  config?: TestServerConfig;
  /** Extras such as a custom verifier; the admin token is always the test one. */
  extras?: Omit<ServerExtras, "adminToken">;
}

/** A server on an ephemeral loopback port with the test admin token, on a fresh data directory. */
export interface BridgeTestServer extends TestServer {
  /** ws://127.0.0.1:port/path (wss:// when TLS is configured). */
  wsUrl(path?: string): string;
}

export async function startBridgeServer(
  options: BridgeServerOptions = {},
): Promise<BridgeTestServer> {
  const dir = createTestDataDir();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      { logLevel: "silent", ...options.config, port: 0, host: "127.0.0.1", dataDir: dir.path },
      { ...options.extras, adminToken: testAdminToken() },
    );
  } catch (error) {
    dir.remove();
    throw error;
  }
  const clients = createClientFactory(server.url);
  let closed: Promise<void> | undefined;
  return {
    ...clients,
    server,
    dataDir: dir.path,
    wsUrl: (path = "/") => `${server.url.replace(/^http/, "ws")}${path}`,
    close: () =>
      (closed ??= (async () => {
        clients.closeClients();
        await server.close();
        dir.remove();
      })()),
  };
}

// ---- the client ----

/** A server message as received: the parsed envelope and the raw text. */
export interface ServerFrame {
  type: string;
  data: Record<string, unknown>;
  raw: string;
}

/** How the server closed the connection. */
export interface CloseEvent {
  code: number;
  reason: string;
}

/** Frames of one kind a test counts besides messages. */
interface Counters {
  pings: number;
  binaryFrames: number;
}

/**
 * One legacy WebSocket connection: every text frame is kept in order and
 * taken with `next()`; anything that is not a JSON object envelope fails
 * the test (the SDK would drop it and time out).
 */
export class LegacyWs {
  readonly label: string;
  readonly ws: WebSocket;
  /** Every frame received, in order (taken or not). */
  readonly received: ServerFrame[] = [];
  readonly counters: Counters = { pings: 0, binaryFrames: 0 };
  #taken = 0;
  #closeEvent: CloseEvent | undefined;
  #unparseable: string | undefined;
  readonly #wakers = new Set<() => void>();
  #probes = 0;

  private constructor(ws: WebSocket, label: string) {
    this.ws = ws;
    this.label = label;
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        this.counters.binaryFrames++;
      } else {
        const raw = Buffer.isBuffer(data)
          ? data.toString("utf8")
          : Array.isArray(data)
            ? Buffer.concat(data).toString("utf8")
            : Buffer.from(data).toString("utf8");
        const frame = parseFrame(raw);
        if (frame === undefined) this.#unparseable ??= raw;
        else this.received.push(frame);
      }
      this.#wake();
    });
    ws.on("ping", () => {
      this.counters.pings++;
      this.#wake();
    });
    ws.on("close", (code, reason) => {
      this.#closeEvent = { code, reason: reason.toString("utf8") };
      this.#wake();
    });
    ws.on("error", () => this.#wake());
  }

  /** Opens a connection; fails (with the HTTP status when there is one) if the upgrade is refused. */
  static open(
    url: string,
    options: ClientOptions & ClientRequestArgs = {},
    label = "ws",
  ): Promise<LegacyWs> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { handshakeTimeout: FRAME_WAIT_MS, ...options });
      const client = new LegacyWs(ws, label);
      const onError = (error: Error) => {
        ws.off("open", onOpen);
        reject(error);
      };
      const onOpen = () => {
        ws.off("error", onError);
        resolve(client);
      };
      ws.once("open", onOpen);
      ws.once("error", onError);
    });
  }

  /** Sends one message as compact JSON in a text frame. */
  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  /** Sends a text frame as is. */
  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Sends a binary frame. */
  sendBinary(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** The next message not yet taken; fails after `timeoutMs` or when the connection closes first. */
  next(what = "a message", timeoutMs = FRAME_WAIT_MS): Promise<ServerFrame> {
    return this.#until(
      () => {
        const frame = this.received[this.#taken];
        if (frame === undefined) return undefined;
        this.#taken++;
        return frame;
      },
      what,
      timeoutMs,
    );
  }

  /** Sends a message and takes the next one (the SDK's way of reading a reply). */
  async request(message: unknown, what?: string): Promise<ServerFrame> {
    this.send(message);
    return this.next(what ?? `the reply to ${describeMessage(message)}`);
  }

  /**
   * Extended mode: the reply carrying `requestId`, wherever it is among the
   * frames received (pushes may come between a request and its reply).
   */
  replyTo(requestId: string, timeoutMs = FRAME_WAIT_MS): Promise<ServerFrame> {
    return this.#until(
      () =>
        this.received.find((f) => f.type !== "VariableChanged" && f.data.request_id === requestId),
      `the reply to request ${requestId}`,
      timeoutMs,
    );
  }

  /**
   * Proves that nothing was sent since the last taken message (and nothing
   * is in flight ahead of a reply): a Heartbeat is answered in order, so
   * the next message must be its reply. No sleep involved.
   */
  async expectNothing(after = "the last request"): Promise<void> {
    const clientId = `probe-${++this.#probes}`;
    this.send({ type: "Heartbeat", data: { client_id: clientId } });
    const frame = await this.next(`the Heartbeat reply probing that nothing came after ${after}`);
    if (frame.type !== "Heartbeat" || "request_id" in frame.data) {
      throw new Error(
        `${this.label}: expected nothing after ${after}, but got ${frame.raw} before the Heartbeat reply`,
      );
    }
  }

  /** Messages received but not taken yet. */
  get pending(): ServerFrame[] {
    return this.received.slice(this.#taken);
  }

  /** How the server closed the connection; fails if it stays open for `timeoutMs`. */
  closed(timeoutMs = FRAME_WAIT_MS): Promise<CloseEvent> {
    return this.#until(() => this.#closeEvent, "the connection to close", timeoutMs, true);
  }

  /** True once the connection is closed. */
  get isClosed(): boolean {
    return this.#closeEvent !== undefined;
  }

  /** Waits until a condition on this connection holds (re-checked on every frame). */
  until<T>(probe: () => T | undefined, what: string, timeoutMs = FRAME_WAIT_MS): Promise<T> {
    return this.#until(probe, what, timeoutMs);
  }

  /** Closes from the client side (code 1000) and waits for the close to complete. */
  async close(): Promise<void> {
    if (this.#closeEvent !== undefined) return;
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(1000, "test done");
    }
    await this.closed().catch(() => this.ws.terminate());
  }

  /** Drops the TCP connection without a close handshake. */
  terminate(): void {
    this.ws.terminate();
  }

  #wake(): void {
    for (const waker of [...this.#wakers]) waker();
  }

  #until<T>(
    probe: () => T | undefined,
    what: string,
    timeoutMs: number,
    evenAfterClose = false,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (why: string): void => {
        done();
        const pending = this.pending.map((f) => f.raw).join(" | ");
        reject(
          new Error(
            `${this.label}: ${why} while waiting for ${what}` +
              (pending === "" ? "" : ` (untaken: ${pending})`),
          ),
        );
      };
      const check = (): void => {
        if (this.#unparseable !== undefined) {
          fail(`the server sent a text frame the legacy SDK cannot parse: ${this.#unparseable}`);
          return;
        }
        const result = probe();
        if (result !== undefined) {
          done();
          resolve(result);
        } else if (this.#closeEvent !== undefined && !evenAfterClose) {
          fail(
            `the connection closed (${this.#closeEvent.code} ${JSON.stringify(this.#closeEvent.reason)})`,
          );
        }
      };
      const timer = setTimeout(() => fail(`nothing within ${timeoutMs} ms`), timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(check);
      };
      this.#wakers.add(check);
      check();
    });
  }
}

/** The envelope of a server frame, or undefined when the SDK could not even read that much. */
function parseFrame(raw: string): ServerFrame | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isPlainObject(parsed) || typeof parsed.type !== "string" || !isPlainObject(parsed.data)) {
    return undefined;
  }
  return { type: parsed.type, data: parsed.data, raw };
}

function describeMessage(message: unknown): string {
  return isPlainObject(message) && typeof message.type === "string"
    ? message.type
    : JSON.stringify(message);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---- message shapes ----

/** The eight error codes, exactly as the SDK parses them. */
export const LEGACY_ERROR_CODES = [
  "NOT_FOUND",
  "PERMISSION_DENIED",
  "UNAUTHORIZED",
  "ALREADY_EXISTS",
  "INVALID_REQUEST",
  "INTERNAL_ERROR",
  "CONNECTION_LOST",
  "TIMEOUT",
] as const;

export type LegacyErrorCode = (typeof LEGACY_ERROR_CODES)[number];

type FieldKind = "string" | "bool" | "u64" | "bytes" | "strings" | "code" | "timestamp";

interface MessageSchema {
  required: Record<string, FieldKind>;
  optional?: Record<string, FieldKind>;
}

const VARIABLE_FIELDS: Record<string, FieldKind> = {
  service_id: "string",
  variable_name: "string",
  data: "bytes",
  version: "u64",
};

/** Every server message type of legacy-ws-protocol.md §3 and its fields. */
export const SERVER_MESSAGE_SCHEMAS: Record<string, MessageSchema> = {
  AuthenticationResult: {
    required: { success: "bool", message: "string", server_version: "string" },
    optional: { permissions: "strings" },
  },
  Service: {
    required: { service_id: "string", service_name: "string", tenant_id: "string" },
    optional: { file_path: "string" },
  },
  Tenant: { required: { tenant_id: "string", tenant_name: "string" } },
  TenantResult: { required: { success: "bool", tenant_id: "string", message: "string" } },
  VariableData: { required: VARIABLE_FIELDS },
  VariableChanged: { required: VARIABLE_FIELDS },
  Result: { required: { request_id: "string", success: "bool", message: "string" } },
  Error: { required: { code: "code", message: "string" } },
  Disconnected: { required: { reason: "string" } },
  ServiceFilePath: {
    required: { service_id: "string", file_path: "string", file_size: "u64" },
  },
  VariableChangesAcknowledged: {
    required: { service_id: "string", changed_variables: "strings" },
  },
  Heartbeat: { required: { timestamp: "timestamp" } },
};

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function kindProblem(kind: FieldKind, value: unknown): string | undefined {
  switch (kind) {
    case "string":
      return typeof value === "string" ? undefined : "is not a string";
    case "bool":
      return typeof value === "boolean" ? undefined : "is not a boolean";
    case "u64":
      return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
        ? undefined
        : "is not a non-negative integer";
    case "bytes":
      return Array.isArray(value) &&
        value.every((b) => typeof b === "number" && Number.isInteger(b) && b >= 0 && b <= 255)
        ? undefined
        : "is not an array of integers 0–255";
    case "strings":
      return Array.isArray(value) && value.every((s) => typeof s === "string")
        ? undefined
        : "is not an array of strings";
    case "code":
      return (LEGACY_ERROR_CODES as readonly unknown[]).includes(value)
        ? undefined
        : "is not one of the eight legacy error codes";
    case "timestamp":
      return typeof value === "string" && RFC3339.test(value) && !Number.isNaN(Date.parse(value))
        ? undefined
        : "is not an RFC 3339 timestamp";
  }
}

/** What the reply must carry besides its schema. */
export interface ShapeExpectation {
  /** Extended mode: this request_id must be echoed in `data` (a Result carries one anyway). */
  requestId?: string;
}

/**
 * Everything wrong with a frame as the legacy SDK would parse it: exact
 * envelope, a known type, exactly its keys (optional ones may be absent),
 * each of its kind; empty when it conforms.
 */
export function shapeProblems(frame: ServerFrame, expectation: ShapeExpectation = {}): string[] {
  const problems: string[] = [];
  const envelope = JSON.parse(frame.raw) as Record<string, unknown>;
  const envelopeKeys = Object.keys(envelope).sort();
  if (envelopeKeys.join(",") !== "data,type") problems.push(`envelope keys ${envelopeKeys}`);
  const schema = SERVER_MESSAGE_SCHEMAS[frame.type];
  if (schema === undefined) return [...problems, `unknown server message type ${frame.type}`];
  const allowed = new Map<string, FieldKind>([
    ...Object.entries(schema.required),
    ...Object.entries(schema.optional ?? {}),
  ]);
  const required = new Set(Object.keys(schema.required));
  if (expectation.requestId !== undefined) {
    allowed.set("request_id", "string");
    required.add("request_id");
    if (frame.data.request_id !== expectation.requestId) {
      problems.push(
        `request_id ${JSON.stringify(frame.data.request_id)} is not the one sent (${expectation.requestId})`,
      );
    }
  }
  for (const key of required) {
    if (!(key in frame.data) || frame.data[key] === null) problems.push(`${key} is missing`);
  }
  for (const [key, value] of Object.entries(frame.data)) {
    const kind = allowed.get(key);
    if (kind === undefined) {
      problems.push(`unexpected key ${key}`);
      continue;
    }
    const problem = kindProblem(kind, value);
    if (problem !== undefined) problems.push(`${key} ${problem} (${JSON.stringify(value)})`);
  }
  return problems;
}

/** Fails unless `frame` is a conforming message of `type`; returns its data. */
export function expectShape(
  frame: ServerFrame,
  type: string,
  expectation: ShapeExpectation = {},
): Record<string, unknown> {
  const problems = shapeProblems(frame, expectation);
  if (frame.type !== type) problems.unshift(`type is ${frame.type}, expected ${type}`);
  if (problems.length > 0) {
    throw new Error(`bad ${type} reply ${frame.raw}:\n  ${problems.join("\n  ")}`);
  }
  return frame.data;
}

/** Fails unless `frame` is a conforming Error with `code`; returns its message. */
export function expectError(
  frame: ServerFrame,
  code: LegacyErrorCode,
  expectation: ShapeExpectation = {},
): string {
  const data = expectShape(frame, "Error", expectation);
  if (data.code !== code) throw new Error(`expected an Error ${code}, got ${frame.raw}`);
  return data.message as string;
}

// ---- client messages ----

/** The Authenticate message the SDK sends, with the credential fields merged into `data`. */
export function authenticateMessage(
  tenantId: string,
  credential:
    | { method: "api_key"; key: string }
    | { method: "jwt"; token: string }
    | { method: "basic"; username: string; password: string }
    | { method: "custom"; data: unknown },
  extra: Record<string, unknown> = {},
): { type: "Authenticate"; data: Record<string, unknown> } {
  return {
    type: "Authenticate",
    data: { tenant_id: tenantId, client_version: "0.1.0", ...credential, ...extra },
  };
}

/** Authenticates with an API key and fails unless it succeeds; returns the permissions. */
export async function authenticate(
  client: LegacyWs,
  tenantId: string,
  key: string,
): Promise<string[]> {
  const frame = await client.request(authenticateMessage(tenantId, { method: "api_key", key }));
  const data = expectShape(frame, "AuthenticationResult");
  if (data.success !== true) throw new Error(`authentication to ${tenantId} failed: ${frame.raw}`);
  return (data.permissions as string[] | undefined) ?? [];
}
