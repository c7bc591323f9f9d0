/**
 * One TLS port for every transport: ALPN picks HTTP/2 ("h2") or HTTP/1.1
 * (which also takes WebSocket upgrades, i.e. wss). A client that offers no
 * ALPN is served HTTP/1.1. Plain-text clients fail the handshake.
 */
import type { Server as HttpServer } from "node:http";
import type { Http2Server } from "node:http2";
import { type Server as TlsServer, createServer } from "node:tls";

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

export function createTlsListener(
  http1: HttpServer,
  http2: Http2Server,
  files: TlsFiles,
): TlsServer {
  return createServer({ ...files, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
    socket.setNoDelay(true);
    (socket.alpnProtocol === "h2" ? http2 : http1).emit("connection", socket);
  });
}
