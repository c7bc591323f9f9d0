/**
 * TLS (--tls-cert / --tls-key): the one port serves wss, and Connect over
 * HTTP/2 with ALPN, with a throwaway self-signed certificate made at test
 * time by openssl. A wss client trusting that certificate runs the SDK's
 * trace; a Connect client trusting it works; a plain ws:// client and a wss
 * client that does not trust the certificate are refused.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../../gen/commy/v1/identity_pb.js";
import { WIRE_PERMISSION } from "../helpers/identity-fixtures.js";
import { type BridgeTestServer, LegacyWs, startBridgeServer } from "../helpers/legacy-ws.js";
import { credentialHeaders } from "../helpers/test-server.js";
import { runSdkTrace } from "./sdk-trace.js";

interface ThrowawayCertificate {
  certFile: string;
  keyFile: string;
  certPem: Buffer;
  remove(): void;
}

/**
 * A self-signed certificate for 127.0.0.1, valid one day. Fails with a clear
 * message when openssl is missing: Node cannot make X.509 certificates, and
 * this test must not pass by skipping.
 */
function makeCertificate(): ThrowawayCertificate {
  const dir = mkdtempSync(join(tmpdir(), "commy-tls-"));
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-days",
        "1",
        "-keyout",
        keyFile,
        "-out",
        certFile,
      ],
      { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `the TLS tests need openssl to make a throwaway certificate, and it failed or is missing: ${
        (error as Error).message
      }`,
    );
  }
  return {
    certFile,
    keyFile,
    certPem: readFileSync(certFile),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

let certificate: ThrowawayCertificate;
let test: BridgeTestServer;

beforeAll(async () => {
  certificate = makeCertificate();
  test = await startBridgeServer({
    config: { tlsCert: certificate.certFile, tlsKey: certificate.keyFile },
  });
});

afterAll(async () => {
  await test?.close();
  certificate?.remove();
});

describe("with TLS configured", () => {
  it("serves wss: a client trusting the certificate runs the SDK's trace", async () => {
    expect(test.wsUrl()).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
    // The Connect client over HTTP/1.1 of the shared helper cannot trust the certificate: set up over h2.
    const connect = connectOverH2();
    await connect.client.createTenant({ tenantId: "secure" });
    connect.close();
    const actor = await createActorOverH2("secure");
    const client = await LegacyWs.open(test.wsUrl("/legacy"), { ca: certificate.certPem }, "wss");
    const trace = await runSdkTrace(client, "secure", actor);
    expect(trace.permissions).toEqual(["admin"]);
  });

  it("serves Connect over HTTP/2 to a client trusting the certificate", async () => {
    const connect = connectOverH2();
    await connect.client.createTenant({ tenantId: "h2" });
    const { tenant } = await connect.client.getTenant({ tenantId: "h2" });
    expect(tenant?.tenantId).toBe("h2");
    connect.close();
  });

  it("refuses a plain ws:// client", async () => {
    const plain = test.wsUrl().replace(/^wss:/, "ws:");
    await expect(LegacyWs.open(plain, { handshakeTimeout: 3_000 }, "plain")).rejects.toThrow();
  });

  it("refuses a wss client that does not trust the certificate", async () => {
    await expect(LegacyWs.open(test.wsUrl(), {}, "untrusting")).rejects.toThrow(
      /self[- ]signed|certificate/i,
    );
  });
});

/** An admin transport over h2 that trusts the throwaway certificate, and how to end it. */
function adminTransportOverH2() {
  const sessionManager = new Http2SessionManager(test.server.url, undefined, {
    ca: certificate.certPem,
  });
  const headers = Object.entries(credentialHeaders("admin"));
  const transport = createConnectTransport({
    baseUrl: test.server.url,
    httpVersion: "2",
    sessionManager,
    interceptors: [
      (next) => (request) => {
        for (const [name, value] of headers) request.header.set(name, value);
        return next(request);
      },
    ],
  });
  return { transport, close: () => sessionManager.abort() };
}

function connectOverH2() {
  const { transport, close } = adminTransportOverH2();
  return { client: createClient(CommyService, transport), close };
}

/**
 * A tenant admin's API key, made through the IdentityService over h2
 * (createActor's HTTP/1.1 client has no way to trust the certificate).
 */
async function createActorOverH2(tenantId: string): Promise<string> {
  const { transport, close } = adminTransportOverH2();
  const identity = createClient(IdentityService, transport);
  try {
    await identity.createPrincipal({ tenantId, name: "sdk", password: "" });
    await identity.grantPermission({
      tenantId,
      principalName: "sdk",
      permission: WIRE_PERMISSION["tenant:admin"],
      servicePrefix: "",
    });
    return (await identity.createApiKey({ tenantId, principalName: "sdk" })).apiKey;
  } finally {
    close();
  }
}
