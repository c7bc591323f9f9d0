/**
 * One TLS port for every transport: ALPN picks HTTP/2 ("h2") or HTTP/1.1
 * (which also takes WebSocket upgrades, i.e. wss). A client that offers no
 * ALPN is served HTTP/1.1. Plain-text clients fail the handshake.
 */
import type { Server as HttpServer } from "node:http";
import type { Http2Server } from "node:http2";
import { type Server as TlsServer, type TLSSocket, createServer } from "node:tls";

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** CA of client certificates; clients without one still connect (and use tokens). */
  clientCa?: Buffer;
}

export function createTlsListener(
  http1: HttpServer,
  http2: Http2Server,
  files: TlsFiles,
): TlsServer {
  const clientCertificates =
    files.clientCa === undefined
      ? {}
      : { ca: files.clientCa, requestCert: true, rejectUnauthorized: false };
  const options = { cert: files.cert, key: files.key, ...clientCertificates };
  return createServer({ ...options, ALPNProtocols: ["h2", "http/1.1"] }, (socket) => {
    socket.setNoDelay(true);
    (socket.alpnProtocol === "h2" ? http2 : http1).emit("connection", socket);
  });
}

/**
 * The principal id a verified client certificate names (its subject CN),
 * or undefined: no TLS, no certificate, or one the configured CA did not sign.
 */
export function certificatePrincipal(socket: unknown): string | undefined {
  const tls = socket as Partial<TLSSocket>;
  if (tls.authorized !== true || typeof tls.getPeerCertificate !== "function") return undefined;
  const subject = tls.getPeerCertificate().subject as { CN?: string | string[] } | undefined;
  const cn = subject?.CN;
  return typeof cn === "string" ? cn : undefined;
}
