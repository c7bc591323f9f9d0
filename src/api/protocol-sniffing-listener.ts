/**
 * One cleartext port for HTTP/1.1 and HTTP/2 (h2c). Node's HTTP/2 server
 * only falls back to HTTP/1.1 through TLS/ALPN (`allowHTTP1`), so this
 * listener reads each connection's first bytes: the HTTP/2 client preface
 * ("PRI * HTTP/2.0…") goes to the HTTP/2 server, anything else to the
 * HTTP/1.1 server (which also takes WebSocket upgrades).
 */
import { type Server as HttpServer } from "node:http";
import { type Http2Server } from "node:http2";
import { type Server as NetServer, type Socket, createServer } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** A client that sends nothing for this long is dropped before routing. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

export function createSniffingListener(http1: HttpServer, http2: Http2Server): NetServer {
  return createServer({ noDelay: true }, (socket) => route(socket, http1, http2));
}

function route(socket: Socket, http1: HttpServer, http2: Http2Server): void {
  let received: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), FIRST_BYTES_TIMEOUT_MS);
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const compared = Math.min(received.length, PREFACE.length);
    const isPreface = received.subarray(0, compared).equals(PREFACE.subarray(0, compared));
    // Decide as soon as the bytes say it: a mismatch, or the whole preface.
    if (isPreface && received.length < PREFACE.length) return;
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    socket.unshift(received);
    // The HTTP/2 session drains what is buffered when it starts (Node ≥ 18);
    // the HTTP/1.1 server needs the stream flowing again.
    (isPreface ? http2 : http1).emit("connection", socket);
    if (!isPreface) socket.resume();
  };
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on("data", onData);
  socket.on("error", onError);
  socket.once("close", () => clearTimeout(timer));
}
