/**
 * A minimal Redis client over node:net (RESP2): enough for PING, PUBLISH
 * and SUBSCRIBE, so that the stream suite holds Commy against Redis
 * pub/sub without a dependency. Not a general client: no reconnects, no
 * RESP3, no authentication, loopback only.
 */
import { type Socket, connect } from "node:net";

/** A parsed reply: simple string, integer, bulk string (bytes), null, array or error. */
export type RespValue = null | number | string | Buffer | RespError | RespValue[];

/** An error reply of the server (`-ERR …`). */
export class RespError extends Error {
  override readonly name = "RespError";
}

const CRLF = "\r\n";

/** One command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}${CRLF}`, "latin1")];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : arg;
    parts.push(Buffer.from(`$${bytes.length}${CRLF}`, "latin1"), Buffer.from(bytes), CRLF_BYTES);
  }
  return Buffer.concat(parts);
}
const CRLF_BYTES = Buffer.from(CRLF, "latin1");

/** A value and the offset just past it, or undefined when the input ends first. */
type Parsed = { value: RespValue; end: number } | undefined;

function parseValue(buffer: Buffer, offset: number): Parsed {
  if (offset >= buffer.length) return undefined;
  const lineEnd = buffer.indexOf(CRLF, offset + 1, "latin1");
  if (lineEnd < 0) return undefined;
  const type = buffer[offset];
  const line = buffer.toString("latin1", offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case 0x2b: // '+'
      return { value: line, end: next };
    case 0x2d: // '-'
      return { value: new RespError(line), end: next };
    case 0x3a: // ':'
      return { value: Number(line), end: next };
    case 0x24: {
      // '$': a bulk string of `length` bytes, or null
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (next + length + 2 > buffer.length) return undefined;
      return { value: buffer.subarray(next, next + length), end: next + length + 2 };
    }
    case 0x2a: {
      // '*': an array of `count` values, or null
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const values: RespValue[] = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const element = parseValue(buffer, at);
        if (element === undefined) return undefined;
        values.push(element.value);
        at = element.end;
      }
      return { value: values, end: at };
    }
    default:
      throw new Error(`RESP: unexpected type byte ${String(type)}`);
  }
}

/** Splits a byte stream into replies, keeping an incomplete tail for the next chunk. */
export class RespParser {
  #rest: Buffer = Buffer.alloc(0);

  feed(chunk: Buffer, emit: (value: RespValue) => void): void {
    const buffer = this.#rest.length === 0 ? chunk : Buffer.concat([this.#rest, chunk]);
    let offset = 0;
    for (;;) {
      const parsed = parseValue(buffer, offset);
      if (parsed === undefined) break;
      offset = parsed.end;
      emit(parsed.value);
    }
    this.#rest = buffer.subarray(offset);
  }
}

type ReplyHandler = (value: RespValue) => void;

/** One connection to a Redis server. */
export class RespConnection {
  readonly #socket: Socket;
  readonly #parser = new RespParser();
  /** Handlers of replies still to come, in order (a FIFO with a moving head). */
  #waiting: ReplyHandler[] = [];
  #head = 0;
  #onMessage: ((payload: Buffer) => void) | undefined;
  #closedWith: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.#parser.feed(chunk, (value) => this.#receive(value)));
    socket.on("error", (error) => this.#fail(error));
    socket.on("close", () => this.#fail(new Error("the Redis connection closed")));
  }

  /** Connects to 127.0.0.1:`port` (bounded by `timeoutMs`). */
  static connect(port: number, timeoutMs = 5_000): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection to Redis on port ${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.removeAllListeners("error");
        resolve(new RespConnection(socket));
      });
    });
  }

  /** Sends a command without waiting; `onReply` gets its reply (or the connection's failure). */
  send(args: readonly (string | Uint8Array)[], onReply: ReplyHandler): void {
    if (this.#closedWith !== undefined) {
      onReply(new RespError(this.#closedWith.message));
      return;
    }
    this.#waiting.push(onReply);
    this.#socket.write(encodeCommand(args));
  }

  /** Sends a command and resolves with its reply; an error reply rejects. */
  command(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    return new Promise((resolve, reject) =>
      this.send(args, (value) => (value instanceof RespError ? reject(value) : resolve(value))),
    );
  }

  /**
   * Subscribes to `channel`; from then on the connection only receives, and
   * `onMessage` gets the payload of every message published there.
   */
  async subscribe(channel: string, onMessage: (payload: Buffer) => void): Promise<void> {
    this.#onMessage = onMessage;
    await this.command(["SUBSCRIBE", channel]);
  }

  /** Holds writes until `uncork()`: many commands leave in one segment. */
  cork(): void {
    this.#socket.cork();
  }

  uncork(): void {
    this.#socket.uncork();
  }

  close(): void {
    this.#fail(new Error("closed"));
    this.#socket.destroy();
  }

  #receive(value: RespValue): void {
    if (this.#onMessage !== undefined && Array.isArray(value) && isMessage(value)) {
      this.#onMessage(value[2] as Buffer);
      return;
    }
    const handler = this.#waiting[this.#head];
    if (handler === undefined) return; // an unsolicited push we do not follow
    this.#waiting[this.#head++] = noop;
    if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
    handler(value);
  }

  #fail(error: Error): void {
    if (this.#closedWith !== undefined) return;
    this.#closedWith = error;
    const waiting = this.#waiting.slice(this.#head);
    this.#waiting = [];
    this.#head = 0;
    for (const handler of waiting) handler(new RespError(error.message));
  }
}

const noop: ReplyHandler = () => undefined;

/** A pub/sub push: ["message", channel, payload]. */
function isMessage(value: RespValue[]): boolean {
  const kind = value[0];
  return value.length === 3 && Buffer.isBuffer(kind) && kind.toString("latin1") === "message";
}
