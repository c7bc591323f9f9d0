/**
 * A lean gRPC bidi stream over `node:http2` for the bench's subscribers:
 * requests are framed by hand and responses are split into messages by
 * their 5-byte prefixes, then decoded with protobuf-es — the same bytes as
 * a connect-es call, without its per-message pipeline of async iterables.
 * A subscriber of Redis reads RESP the same lean way (resp-client.ts), so
 * that both peers' figures measure the server rather than a client library
 * sharing the machine's two CPUs.
 */
import { type ClientHttp2Session, type ClientHttp2Stream, connect } from "node:http2";
import {
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
  create,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";

/** gRPC's message prefix: a compressed flag and a big-endian length. */
const PREFIX_BYTES = 5;

/** One uncompressed gRPC message on the wire: its 5-byte prefix, then `body`. */
export function grpcFrame(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + body.length);
  frame[0] = 0;
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, PREFIX_BYTES);
  return frame;
}

export interface GrpcFrameStreamOptions<I extends DescMessage, O extends DescMessage> {
  baseUrl: string;
  /** "/package.Service/Method" */
  path: string;
  bearer: string;
  request: I;
  response: O;
  /** Each response message, in order. */
  onMessage(message: MessageShape<O>): void;
  /** The stream ended or broke (once); `error` is undefined for a clean end with status 0. */
  onEnd(error: Error | undefined): void;
}

/** One bidi call on an HTTP/2 connection of its own. */
export class GrpcFrameStream<I extends DescMessage, O extends DescMessage> {
  readonly #session: ClientHttp2Session;
  readonly #stream: ClientHttp2Stream;
  readonly #options: GrpcFrameStreamOptions<I, O>;
  #pending: Buffer = Buffer.alloc(0);
  #ended = false;
  /** Frames sent in this turn of the event loop: they leave in one write, as a pipelining client's do. */
  #outbox: Uint8Array[] = [];

  constructor(options: GrpcFrameStreamOptions<I, O>) {
    this.#options = options;
    this.#session = connect(options.baseUrl);
    this.#session.on("error", (error) => this.#end(error));
    this.#stream = this.#session.request({
      ":method": "POST",
      ":path": options.path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      authorization: `Bearer ${options.bearer}`,
    });
    this.#stream.on("data", (chunk: Buffer) => this.#receive(chunk));
    this.#stream.on("trailers", (trailers) => {
      const status = Number(trailers["grpc-status"] ?? "0");
      const message = String(trailers["grpc-message"] ?? "");
      this.#end(status === 0 ? undefined : new Error(`grpc-status ${status}: ${message}`));
    });
    this.#stream.on("error", (error) => this.#end(error));
    this.#stream.on("close", () =>
      this.#end(new Error(`the stream closed (HTTP/2 code ${this.#stream.rstCode ?? "?"})`)),
    );
  }

  send(init: MessageInitShape<I>): void {
    const frame = grpcFrame(toBinary(this.#options.request, create(this.#options.request, init)));
    if (this.#outbox.push(frame) === 1) process.nextTick(() => this.#flush());
  }

  #flush(): void {
    const frames = this.#outbox;
    this.#outbox = [];
    if (this.#ended) return;
    this.#stream.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
  }

  close(): void {
    this.#ended = true;
    this.#stream.close();
    this.#session.close();
  }

  #receive(chunk: Buffer): void {
    let data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (data.length >= PREFIX_BYTES) {
      const length = data.readUInt32BE(1);
      if (data.length < PREFIX_BYTES + length) break;
      if (data[0] !== 0) {
        this.#end(new Error("a compressed message, which this client never asked for"));
        return;
      }
      const body = data.subarray(PREFIX_BYTES, PREFIX_BYTES + length);
      this.#options.onMessage(fromBinary(this.#options.response, body));
      data = data.subarray(PREFIX_BYTES + length);
    }
    this.#pending = data;
  }

  #end(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#options.onEnd(error);
  }
}
