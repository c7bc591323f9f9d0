/**
 * What the stream tests (test/watch) need beyond test/helpers/test-server.ts:
 * servers with shortened watch limits, WatchService clients each on a
 * connection of its own, a bidi Watch stream driven command by command, a
 * Subscribe call, a raw HTTP/2 gRPC Watch whose reader can stop reading
 * (real backpressure), and checks of version chains. Every wait is bounded
 * and waits on messages, never on the clock.
 */
import { afterEach } from "vitest";
import { Agent } from "node:http";
import { type ClientHttp2Session, type ClientHttp2Stream, connect } from "node:http2";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type MessageInitShape, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Client,
  type Interceptor,
  createClient,
} from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import {
  type ErrorCode,
  type ErrorDetail,
  ErrorDetailSchema,
} from "../../gen/commy/v1/errors_pb.js";
import { Permission } from "../../gen/commy/v1/identity_pb.js";
import {
  type Change,
  ChangeKind,
  type Reply,
  type SubscribeRequestSchema,
  type SubscribeResponse,
  type SubscriptionSchema,
  type WatchRequest,
  WatchRequestSchema,
  type WatchResponse,
  WatchResponseSchema,
  WatchService,
  type WriteCommandSchema,
} from "../../gen/commy/v1/watch_pb.js";
import { type CommyServer, startServer } from "../../src/server.js";
import type { WatchSessionLimits } from "../../src/core/watch-session.js";
import { decodeRpcStatus, errorDetailsOf } from "./error-details.js";
import {
  type ClientFactory,
  type CommyClient,
  type Credentials,
  type HttpVersion,
  type IdentityClient,
  type Protocol,
  createClientFactory,
  createTestDataDir,
  credentialHeaders,
  startTestServer,
} from "./test-server.js";

/** A typed connect-es client of commy.v1.WatchService. */
export type WatchClient = Client<typeof WatchService>;

/** How a WatchService client reaches the server. */
export interface WatchClientOptions {
  protocol?: Protocol;
  httpVersion?: HttpVersion;
  /** Connect only: protobuf instead of JSON (the default for Connect here: JSON). */
  binary?: boolean;
  credentials?: Credentials;
}

/** A server for the stream tests: the shared test server's clients plus WatchService clients. */
export interface WatchTestServer extends ClientFactory {
  readonly server: CommyServer;
  readonly dataDir: string;
  /** An admin client of CommyService (Connect binary over HTTP/2). */
  readonly admin: CommyClient;
  /** An admin client of IdentityService. */
  readonly identity: IdentityClient;
  /** A WatchService client on a connection of its own (Connect over HTTP/2 by default). */
  watchClient(options?: WatchClientOptions): WatchClient;
  /** Opens a bidi Watch stream on a connection of its own. */
  openWatch(options?: WatchClientOptions & { label?: string; lean?: boolean }): WatchStream;
  /** Where the file of a service lives. */
  serviceFilePath(serviceId: string): string;
  /** Closes clients and streams, then the server (idempotent). */
  close(): Promise<void>;
}

/** The admin's bearer token, as the shared helper hands it out. */
function adminToken(): string {
  const header = credentialHeaders("admin").authorization ?? "";
  return header.replace(/^Bearer /, "");
}

/**
 * Starts a server in this process. With `watchLimits` it is started here
 * with them (the shared helper has no way to pass them), otherwise by the
 * shared helper; either way on a fresh data directory, removed on close.
 */
export async function startWatchServer(
  watchLimits?: Partial<WatchSessionLimits>,
): Promise<WatchTestServer> {
  let server: CommyServer;
  let clients: ClientFactory;
  let closeServer: () => Promise<void>;
  let dataDir: string;
  if (watchLimits === undefined) {
    const test = await startTestServer();
    ({ server, dataDir } = test);
    clients = test;
    closeServer = () => test.close();
  } else {
    const dir = createTestDataDir();
    dataDir = dir.path;
    try {
      server = await startServer(
        { logLevel: "silent", port: 0, host: "127.0.0.1", dataDir },
        { adminToken: adminToken(), watchLimits },
      );
    } catch (error) {
      dir.remove();
      throw error;
    }
    clients = createClientFactory(server.url);
    closeServer = async () => {
      clients.closeClients();
      await server.close();
      dir.remove();
    };
  }

  const sessions: Http2SessionManager[] = [];
  const agents: Agent[] = [];
  const streams: WatchStream[] = [];
  const watchClient = (options: WatchClientOptions = {}): WatchClient => {
    const protocol = options.protocol ?? "connect";
    const httpVersion = options.httpVersion ?? "2";
    const headers = Object.entries(credentialHeaders(options.credentials ?? "admin"));
    const interceptors: Interceptor[] = [
      (next) => (request) => {
        for (const [name, value] of headers) request.header.set(name, value);
        return next(request);
      },
    ];
    const useBinaryFormat = options.binary ?? protocol !== "connect";
    const baseUrl = server.url;
    if (httpVersion === "1.1") {
      const agent = new Agent({ keepAlive: true });
      agents.push(agent);
      const common = {
        baseUrl,
        httpVersion: "1.1" as const,
        nodeOptions: { agent },
        interceptors,
        useBinaryFormat,
      };
      if (protocol === "grpc") throw new Error("gRPC needs HTTP/2");
      return createClient(
        WatchService,
        protocol === "connect" ? createConnectTransport(common) : createGrpcWebTransport(common),
      );
    }
    const sessionManager = new Http2SessionManager(baseUrl);
    sessions.push(sessionManager);
    const common = {
      baseUrl,
      httpVersion: "2" as const,
      sessionManager,
      interceptors,
      useBinaryFormat,
    };
    const transport =
      protocol === "connect"
        ? createConnectTransport(common)
        : protocol === "grpc"
          ? createGrpcTransport(common)
          : createGrpcWebTransport(common);
    return createClient(WatchService, transport);
  };

  let closed: Promise<void> | undefined;
  const admin = clients.connectClient("connect", "2", { binary: true });
  return {
    ...clients,
    server,
    dataDir,
    admin,
    identity: clients.identityClient(),
    watchClient,
    openWatch: (options = {}) => {
      const stream = new WatchStream(watchClient(options), options.label ?? "watch", {
        lean: options.lean,
      });
      streams.push(stream);
      return stream;
    },
    serviceFilePath: (serviceId) => join(dataDir, "services", `${serviceId}.commy`),
    close: () =>
      (closed ??= (async () => {
        for (const stream of streams) stream.abort();
        for (const session of sessions) session.abort();
        for (const agent of agents) agent.destroy();
        await closeServer();
      })()),
  };
}

// ---- waiting ----

/** Default bound of every wait: generous, so that only a real hang fails it. */
export const WAIT_MS = 5_000;

/**
 * Messages arriving one by one, and waits for a condition on them: each
 * wait is re-checked when a message arrives or the call ends, and fails
 * with `what` when the time runs out or the call ends first.
 */
class Inbox {
  /** Names the call in failure messages. */
  readonly label: string;
  readonly #checks = new Set<() => void>();
  #outcome: { error: ConnectError | undefined } | undefined;

  constructor(label: string) {
    this.label = label;
  }

  /** How the call ended: undefined for a clean end; waits for it. */
  finished(timeoutMs = WAIT_MS): Promise<ConnectError | undefined> {
    return this.until(() => this.#outcome, "the end of the call", timeoutMs, true).then(
      (outcome) => outcome.error,
    );
  }

  /** True once the call has ended. */
  get ended(): boolean {
    return this.#outcome !== undefined;
  }

  /** The error the call ended with (undefined while it runs or after a clean end). */
  get error(): ConnectError | undefined {
    return this.#outcome?.error;
  }

  protected notify(): void {
    for (const check of [...this.#checks]) check();
  }

  protected end(error: ConnectError | undefined): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = { error };
    this.notify();
  }

  /** A short description of the state, for failure messages. */
  protected describe(): string {
    return "";
  }

  /**
   * Resolves with the first non-undefined result of `probe`, re-checked as
   * messages arrive; fails after `timeoutMs`, or when the call ends first
   * (unless `evenAfterEnd`).
   */
  until<T>(probe: () => T | undefined, what: string, timeoutMs = WAIT_MS, evenAfterEnd = false) {
    return new Promise<T>((resolve, reject) => {
      const fail = (why: string) => {
        finish();
        reject(new Error(`${this.label}: ${why} while waiting for ${what}${this.describe()}`));
      };
      const check = () => {
        let result: T | undefined;
        try {
          result = probe();
        } catch (error) {
          finish();
          reject(error as Error);
          return;
        }
        if (result !== undefined) {
          finish();
          resolve(result);
        } else if (this.#outcome !== undefined && !evenAfterEnd) {
          const error = this.#outcome.error;
          fail(`the call ended (${error === undefined ? "cleanly" : describeError(error)})`);
        }
      };
      const timer = setTimeout(() => fail(`nothing within ${timeoutMs} ms`), timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#checks.delete(check);
      };
      this.#checks.add(check);
      check();
    });
  }
}

function describeError(error: ConnectError): string {
  const details = error.findDetails(ErrorDetailSchema).map((d) => d.code);
  return `${Code[error.code]} ${JSON.stringify(error.rawMessage)} details=${JSON.stringify(details)}`;
}

// ---- bidi Watch ----

const EMPTY = new Uint8Array(0);

/** A command of a WatchRequest, as plain data. */
export type CommandInit = MessageInitShape<typeof WatchRequestSchema>["command"];

/** What a write command carries, minus its request id. */
export type WriteInit = Omit<
  MessageInitShape<typeof WriteCommandSchema>,
  "requestId" | "$typeName"
>;

/** What a subscription names. */
export type SubscriptionInit = MessageInitShape<typeof SubscriptionSchema>;

/**
 * A bidi Watch call: commands are sent as the test asks, every response is
 * kept in order, replies are found by request id.
 */
export class WatchStream extends Inbox {
  /** Every response, in order. */
  readonly responses: WatchResponse[] = [];
  /** Every change of every ChangeBatch, in order. */
  readonly changes: Change[] = [];
  readonly #replies = new Map<string, Reply>();
  readonly #pongs = new Set<string>();
  readonly #outbox: WatchRequest[] = [];
  #wakeSender: (() => void) | undefined;
  #requestsClosed = false;
  #nextRequestId = 1;
  readonly #abort = new AbortController();
  readonly #lean: boolean;
  readonly #latestData = new Map<string, Uint8Array>();

  /**
   * `lean`: keep changes without their data (but the latest data of each
   * subscription and variable, see `latest()`), so that a long run does
   * not fill this process's memory with values.
   */
  constructor(client: WatchClient, label: string, options: { lean?: boolean } = {}) {
    super(label);
    this.#lean = options.lean === true;
    void this.#run(client);
  }

  async #run(client: WatchClient): Promise<void> {
    try {
      for await (const response of client.watch(this.#requests(), { signal: this.#abort.signal })) {
        const { event } = response;
        if (event.case === "changes") {
          for (const change of event.value.changes) {
            const key = `${change.subscriptionId}\0${change.variableName}`;
            if (this.#lean) {
              // A copy: the value may be a view of a much larger received chunk.
              this.#latestData.set(key, change.data.slice());
              change.data = EMPTY;
            } else {
              this.#latestData.set(key, change.data);
            }
            this.changes.push(change);
          }
        }
        if (!this.#lean || event.case !== "changes") this.responses.push(response);
        if (event.case === "reply") this.#replies.set(event.value.requestId, event.value);
        if (event.case === "pong") this.#pongs.add(event.value.requestId);
        this.notify();
      }
      this.end(undefined);
    } catch (error) {
      this.end(ConnectError.from(error));
    } finally {
      // The call is over: the request side ends too (as any gRPC client's would).
      this.#wakeSender?.();
    }
  }

  /** The data of the latest change of a subscription's variable. */
  latest(subscriptionId: bigint, variableName: string): Uint8Array | undefined {
    return this.#latestData.get(`${subscriptionId}\0${variableName}`);
  }

  async *#requests(): AsyncGenerator<WatchRequest> {
    for (;;) {
      const next = this.#outbox.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#requestsClosed || this.ended) return;
      await new Promise<void>((resolve) => (this.#wakeSender = resolve));
      this.#wakeSender = undefined;
    }
  }

  /** Sends a command as is. */
  send(command: CommandInit): void {
    this.#outbox.push(create(WatchRequestSchema, { command }));
    this.#wakeSender?.();
  }

  /** A fresh request id. */
  requestId(prefix = "r"): string {
    return `${prefix}${this.#nextRequestId++}`;
  }

  /** Sends a subscribe command; returns its request id. */
  sendSubscribe(subscription: SubscriptionInit, requestId = this.requestId("sub")): string {
    this.send({ case: "subscribe", value: { requestId, subscription } });
    return requestId;
  }

  /** Sends a write command; returns its request id. */
  sendWrite(write: WriteInit, requestId = this.requestId("w")): string {
    this.send({ case: "write", value: { requestId, ...write } });
    return requestId;
  }

  /** Subscribes; resolves with the Reply (which may carry an error). */
  subscribe(subscription: SubscriptionInit): Promise<Reply> {
    return this.reply(this.sendSubscribe(subscription));
  }

  /** Subscribes and expects success; resolves with the subscription id. */
  async subscribeOk(subscription: SubscriptionInit): Promise<bigint> {
    const reply = await this.subscribe(subscription);
    if (reply.error !== undefined) {
      throw new Error(`subscribe failed: ${JSON.stringify(errorSummary(reply.error))}`);
    }
    return reply.subscriptionId;
  }

  unsubscribe(subscriptionId: bigint): Promise<Reply> {
    const requestId = this.requestId("unsub");
    this.send({ case: "unsubscribe", value: { requestId, subscriptionId } });
    return this.reply(requestId);
  }

  write(write: WriteInit): Promise<Reply> {
    return this.reply(this.sendWrite(write));
  }

  /**
   * Pings and waits for the Pong: everything the server queued for this
   * stream before the ping was answered has arrived by then.
   */
  async ping(requestId = this.requestId("ping")): Promise<void> {
    this.send({ case: "ping", value: { requestId } });
    await this.until(() => (this.#pongs.has(requestId) ? true : undefined), `pong ${requestId}`);
  }

  /** The Reply to a command, waiting for it. */
  reply(requestId: string, timeoutMs = WAIT_MS): Promise<Reply> {
    return this.until(() => this.#replies.get(requestId), `the reply to ${requestId}`, timeoutMs);
  }

  /** The Reply to a command, if it has arrived. */
  replyIfAny(requestId: string): Reply | undefined {
    return this.#replies.get(requestId);
  }

  /** The first response from `from` on that satisfies `match`. */
  nextResponse(
    match: (response: WatchResponse) => boolean,
    what: string,
    from = 0,
    timeoutMs = WAIT_MS,
  ): Promise<{ response: WatchResponse; index: number }> {
    return this.until(
      () => {
        for (let index = from; index < this.responses.length; index++) {
          const response = this.responses[index] as WatchResponse;
          if (match(response)) return { response, index };
        }
        return undefined;
      },
      what,
      timeoutMs,
    );
  }

  /** Changes of one subscription (and variable). */
  changesOf(subscriptionId: bigint, variableName?: string): Change[] {
    return this.changes.filter(
      (c) =>
        c.subscriptionId === subscriptionId &&
        (variableName === undefined || c.variableName === variableName),
    );
  }

  /** Waits until a subscription has seen `version` (or later) of a variable; returns that change. */
  reachVersion(
    subscriptionId: bigint,
    variableName: string,
    version: bigint,
    timeoutMs = WAIT_MS,
  ): Promise<Change> {
    let scanned = 0;
    return this.until(
      () => {
        for (; scanned < this.changes.length; scanned++) {
          const change = this.changes[scanned] as Change;
          if (
            change.subscriptionId === subscriptionId &&
            change.variableName === variableName &&
            change.version >= version
          ) {
            return change;
          }
        }
        return undefined;
      },
      `subscription ${subscriptionId} to reach version ${version} of ${variableName}`,
      timeoutMs,
    );
  }

  /** Closes the client's side of the stream (the server then ends the call). */
  closeRequests(): void {
    this.#requestsClosed = true;
    this.#wakeSender?.();
  }

  /** Drops the call (as a lost connection would). */
  abort(): void {
    this.#abort.abort();
    this.#wakeSender?.();
  }

  protected override describe(): string {
    const tail = this.responses.slice(-5).map(summarize);
    return ` (${this.responses.length} responses, ${this.changes.length} changes; last: ${tail.join("; ")})`;
  }
}

// ---- server-streaming Subscribe ----

/** A Subscribe call: every response kept in order. */
export class SubscribeCall extends Inbox {
  readonly responses: SubscribeResponse[] = [];
  readonly changes: Change[] = [];
  readonly #abort = new AbortController();

  constructor(
    client: WatchClient,
    request: MessageInitShape<typeof SubscribeRequestSchema>,
    label = "subscribe",
  ) {
    super(label);
    void (async () => {
      try {
        for await (const response of client.subscribe(request, {
          signal: this.#abort.signal,
        })) {
          this.responses.push(response);
          if (response.event.case === "changes") this.changes.push(...response.event.value.changes);
          this.notify();
        }
        this.end(undefined);
      } catch (error) {
        this.end(ConnectError.from(error));
      }
    })();
  }

  /** Waits until subscription `subscriptionId` has seen `version` (or later) of a variable. */
  reachVersion(
    subscriptionId: bigint,
    variableName: string,
    version: bigint,
    timeoutMs = WAIT_MS,
  ): Promise<Change> {
    return this.until(
      () =>
        this.changes.find(
          (c) =>
            c.subscriptionId === subscriptionId &&
            c.variableName === variableName &&
            c.version >= version,
        ),
      `subscription ${subscriptionId} to reach version ${version} of ${variableName}`,
      timeoutMs,
    );
  }

  abort(): void {
    this.#abort.abort();
  }

  protected override describe(): string {
    const tail = this.responses.slice(-5).map((r) => summarize(r as unknown as WatchResponse));
    return ` (${this.responses.length} responses; last: ${tail.join("; ")})`;
  }
}

/**
 * For a test file whose tests each start a server of their own (with
 * their own limits): after each test, the raw streams it opened and its
 * server are closed. Call once, at the top of the file.
 */
export function serverPerTest(): {
  /** Starts this test's server. */
  start(watchLimits?: Partial<WatchSessionLimits>): Promise<WatchTestServer>;
  /** This test's server, started on first use without limits. */
  server(): Promise<WatchTestServer>;
  /** A raw Watch on this test's server, closed after the test. */
  raw(server: WatchTestServer): RawGrpcWatch;
} {
  let current: WatchTestServer | undefined;
  const raws: RawGrpcWatch[] = [];
  afterEach(async () => {
    for (const raw of raws.splice(0)) raw.close();
    await current?.close();
    current = undefined;
  });
  const start = async (watchLimits?: Partial<WatchSessionLimits>) =>
    (current = await startWatchServer(watchLimits));
  return {
    start,
    server: async () => current ?? (await start()),
    raw(server) {
      const raw = new RawGrpcWatch(server.server.url);
      raws.push(raw);
      return raw;
    },
  };
}

// ---- a raw HTTP/2 gRPC Watch that can stop reading ----

/** A WatchRequest as one uncompressed gRPC message: its 5-byte prefix, then the message. */
export function watchRequestFrame(command: CommandInit): Buffer {
  const body = toBinary(WatchRequestSchema, create(WatchRequestSchema, { command }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

/** The grpc-status a raw call ended with, with its ErrorDetails. */
export interface RawStatus {
  grpcStatus: number;
  message: string;
  details: ErrorDetail[];
}

/**
 * A Watch call over node:http2 with the gRPC protocol, framed by hand, on a
 * connection of its own. `stopReading()` pauses the HTTP/2 stream: Node
 * then stops granting stream-level flow-control credit, so the server's
 * writes block once the window and its buffers are full — a subscriber that
 * really stalls, not one that buffers without bound.
 */
export class RawGrpcWatch {
  readonly responses: WatchResponse[] = [];
  readonly changes: Change[] = [];
  /** Each response message's length on the wire, in order. */
  readonly messageSizes: number[] = [];
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  #buffered = Buffer.alloc(0);
  #status: RawStatus | undefined;
  #closed = false;
  readonly #checks = new Set<() => void>();

  constructor(baseUrl: string, credentials: Credentials = "admin") {
    this.#session = connect(baseUrl);
    this.#session.on("error", () => undefined);
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": "/commy.v1.WatchService/Watch",
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...credentialHeaders(credentials),
    });
    this.#stream.on("error", () => undefined);
    const onStatus = (headers: Record<string, unknown>) => {
      const status = headers["grpc-status"];
      if (status === undefined) return;
      const detailsBin = headers["grpc-status-details-bin"];
      const details =
        typeof detailsBin === "string"
          ? errorDetailsOf(decodeRpcStatus(Buffer.from(detailsBin, "base64")))
          : [];
      this.#status = {
        grpcStatus: Number(status),
        message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
        details,
      };
      this.#notify();
    };
    this.#stream.on("response", onStatus);
    this.#stream.on("trailers", onStatus);
    this.#stream.on("data", (chunk: Buffer) => {
      this.#buffered = Buffer.concat([this.#buffered, chunk]);
      while (this.#buffered.length >= 5) {
        const length = this.#buffered.readUInt32BE(1);
        if (this.#buffered.length < 5 + length) break;
        const response = fromBinary(WatchResponseSchema, this.#buffered.subarray(5, 5 + length));
        this.messageSizes.push(length);
        this.#buffered = this.#buffered.subarray(5 + length);
        this.responses.push(response);
        if (response.event.case === "changes") this.changes.push(...response.event.value.changes);
      }
      this.#notify();
    });
    this.#stream.on("close", () => {
      this.#closed = true;
      this.#notify();
    });
  }

  send(command: CommandInit): void {
    this.#stream.write(watchRequestFrame(command));
  }

  /** Sends bytes as they are: a bad frame or message, or half of one. */
  sendRaw(bytes: Uint8Array): void {
    this.#stream.write(bytes);
  }

  /** Ends the client's side of the stream. */
  end(): void {
    this.#stream.end();
  }

  /** Stops reading: the server soon cannot send any more. */
  stopReading(): void {
    this.#stream.pause();
  }

  /** Reads again. */
  resumeReading(): void {
    this.#stream.resume();
  }

  /** The first response satisfying `match`, waiting for it. */
  nextResponse(
    match: (r: WatchResponse) => boolean,
    what: string,
    timeoutMs = WAIT_MS,
  ): Promise<WatchResponse> {
    return this.#until(() => this.responses.find(match), what, timeoutMs);
  }

  /** The status the call ended with, waiting for it. */
  status(timeoutMs = WAIT_MS): Promise<RawStatus> {
    return this.#until(() => this.#status, "the call's status", timeoutMs, true);
  }

  close(): void {
    this.#stream.close();
    this.#session.destroy();
  }

  #notify(): void {
    for (const check of [...this.#checks]) check();
  }

  #until<T>(
    probe: () => T | undefined,
    what: string,
    timeoutMs: number,
    evenAfterClose = false,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const result = probe();
        if (result !== undefined) {
          finish();
          resolve(result);
        } else if (this.#closed && !evenAfterClose) {
          finish();
          reject(new Error(`raw watch: the stream closed while waiting for ${what}`));
        } else if (this.#closed && this.#status === undefined) {
          finish();
          reject(
            new Error(`raw watch: the stream closed without a status while waiting for ${what}`),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(
            `raw watch: no ${what} within ${timeoutMs} ms (${this.responses.length} responses, status ${JSON.stringify(this.#status)})`,
          ),
        );
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#checks.delete(check);
      };
      this.#checks.add(check);
      check();
    });
  }
}

// ---- checks ----

/** The code and message of an ErrorDetail (undefined: none), for toEqual. */
export function errorSummary(
  error: ErrorDetail | undefined,
): { code: ErrorCode; message: string } | undefined {
  return error === undefined ? undefined : { code: error.code, message: error.message };
}

/** The ErrorCode of a Reply (undefined: success). */
export function replyCode(reply: Reply): ErrorCode | undefined {
  return reply.error?.code;
}

/** The Connect code and ErrorDetail codes of how a call ended. */
export function endingOf(
  error: ConnectError | undefined,
): { code: Code; errorCodes: ErrorCode[] } | "clean" {
  if (error === undefined) return "clean";
  return { code: error.code, errorCodes: error.findDetails(ErrorDetailSchema).map((d) => d.code) };
}

/**
 * What is wrong with one subscriber's changes of one variable (empty:
 * nothing). The first change is a SNAPSHOT (or, resuming, whatever the
 * server sent first); after it, versions go up by exactly 1 + skipped; no
 * UPDATE says `skipped` > 0 when `expectNoSkips`; each change's data is the
 * value written at its version when `valueAt` knows it.
 */
export function versionChainProblems(
  changes: readonly Change[],
  options: {
    firstKind?: ChangeKind;
    expectNoSkips?: boolean;
    valueAt?: (version: bigint) => Uint8Array | undefined;
  } = {},
): string[] {
  const problems: string[] = [];
  const first = changes[0];
  if (first === undefined) return ["no changes at all"];
  if (options.firstKind !== undefined && first.kind !== options.firstKind) {
    problems.push(`first change is ${ChangeKind[first.kind]} v${first.version}`);
  }
  changes.forEach((change, i) => {
    if (problems.length > 10) return;
    if (change.kind === ChangeKind.DELETED) problems.push(`DELETED at #${i}`);
    if (i > 0) {
      const previous = changes[i - 1] as Change;
      if (change.kind !== ChangeKind.UPDATE) problems.push(`#${i} is ${ChangeKind[change.kind]}`);
      if (change.version !== previous.version + 1n + change.skipped) {
        problems.push(
          `#${i}: v${change.version} skipped ${change.skipped} after v${previous.version}`,
        );
      }
    }
    if (options.expectNoSkips === true && change.skipped !== 0n) {
      problems.push(`#${i}: v${change.version} skipped ${change.skipped}`);
    }
    const expected = options.valueAt?.(change.version);
    if (expected !== undefined && !Buffer.from(change.data).equals(Buffer.from(expected))) {
      problems.push(
        `#${i}: data of v${change.version} is not what was written at v${change.version}`,
      );
    }
  });
  return problems;
}

/** Sum over changes after the first of (1 + skipped): the versions they account for. */
export function versionsAccountedFor(changes: readonly Change[]): bigint {
  return changes.slice(1).reduce((sum, c) => sum + 1n + c.skipped, 0n);
}

// ---- setup ----

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** Creates a tenant and a service with variables (initial values); returns the service id. */
export async function createService(
  admin: CommyClient,
  tenantId: string,
  serviceName: string,
  variables: Record<string, string> = {},
  options: { createTenant?: boolean } = {},
): Promise<string> {
  if (options.createTenant !== false) await admin.createTenant({ tenantId });
  const { service } = await admin.createService({ tenantId, serviceName });
  for (const [variableName, initial] of Object.entries(variables)) {
    await admin.allocateVariable({
      tenantId,
      serviceName,
      variableName,
      initialData: bytes(initial),
    });
  }
  if (service === undefined) throw new Error("CreateService returned no service");
  return service.serviceId;
}

/**
 * A principal of `tenantId` with these grants (on every service), made as
 * an operator would; returns its API key as credentials.
 */
export async function principalWith(
  identity: IdentityClient,
  tenantId: string,
  name: string,
  permissions: Permission[],
  password = "",
): Promise<Credentials> {
  await identity.createPrincipal({ tenantId, name, password });
  for (const permission of permissions) {
    await identity.grantPermission({
      tenantId,
      principalName: name,
      permission,
      servicePrefix: "",
    });
  }
  const { apiKey } = await identity.createApiKey({ tenantId, principalName: name });
  return { bearer: apiKey };
}

export { Permission };

/** One line per response, for failure messages. */
function summarize(response: WatchResponse): string {
  const { event } = response;
  switch (event.case) {
    case "changes":
      return `changes[${event.value.changes
        .slice(0, 3)
        .map((c) => `${c.subscriptionId}:${c.variableName}@${c.version}${ChangeKind[c.kind][0]}`)
        .join(",")}${event.value.changes.length > 3 ? ",…" : ""}]`;
    case "reply":
      return `reply ${event.value.requestId}${event.value.error ? ` ${event.value.error.code}` : ""}`;
    case "ended":
      return `ended ${event.value.subscriptionId} ${event.value.reason?.code}`;
    default:
      return String(event.case);
  }
}

// ---- memory ----

let gcFunction: (() => void) | undefined;

/** Runs full garbage collections (exposing gc for this process on first use). */
async function collectGarbage(): Promise<void> {
  if (gcFunction === undefined) {
    setFlagsFromString("--expose-gc");
    gcFunction = runInNewContext("gc") as () => void;
  }
  // Twice, with a turn of the event loop between: backing stores of
  // ArrayBuffers are freed after the collection that found them dead.
  gcFunction();
  await new Promise((resolve) => setImmediate(resolve));
  gcFunction();
}

/** Bytes this process holds on the V8 heap and in ArrayBuffers (Buffers), after full GCs. */
export async function liveBytes(): Promise<number> {
  await collectGarbage();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

/**
 * Polls `condition` (a state of the in-process server that sends no
 * message) every few milliseconds until it holds; fails after `timeoutMs`.
 */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export type { Credentials };
