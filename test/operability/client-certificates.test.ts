/**
 * TLS client certificates (--tls-client-ca): a certificate signed by the
 * configured CA whose subject CN is "<tenant>/<principal>" authenticates
 * that principal over HTTP/2 with ALPN, with its grants and nothing more.
 * No certificate, one for an unknown principal, or one the CA did not sign
 * is unauthenticated; a bearer token still works beside certificates.
 * Certificates are made at test time with openssl.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService } from "../../gen/commy/v1/identity_pb.js";
import { WIRE_PERMISSION, testAdminToken } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";

const dir = mkdtempSync(join(tmpdir(), "commy-mtls-"));
const file = (name: string): string => join(dir, name);

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 });
  } catch (error) {
    throw new Error(`these tests need openssl to make certificates: ${(error as Error).message}`);
  }
}

/** A key and a certificate for `subject`, signed by the CA (or self-signed with `selfSigned`). */
function issue(name: string, subject: string, extra: string[] = [], selfSigned = false): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  if (selfSigned) {
    openssl([
      "req",
      "-x509",
      ...ec,
      "-subj",
      subject,
      "-days",
      "1",
      ...extra,
      "-keyout",
      file(`${name}.key`),
      "-out",
      file(`${name}.pem`),
    ]);
    return;
  }
  openssl([
    "req",
    ...ec,
    "-subj",
    subject,
    "-keyout",
    file(`${name}.key`),
    "-out",
    file(`${name}.csr`),
  ]);
  openssl([
    "x509",
    "-req",
    "-in",
    file(`${name}.csr`),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    ...extra,
    "-out",
    file(`${name}.pem`),
  ]);
}

function clientOf(server: TestServer, identity?: string, bearer?: string) {
  const tlsOptions = {
    ca: readFileSync(file("ca.pem")),
    ...(identity === undefined
      ? {}
      : {
          cert: readFileSync(file(`${identity}.pem`)),
          key: readFileSync(file(`${identity}.key`)),
        }),
  };
  const sessionManager = new Http2SessionManager(server.server.url, undefined, tlsOptions);
  const transport = createConnectTransport({
    baseUrl: server.server.url,
    httpVersion: "2",
    sessionManager,
    interceptors:
      bearer === undefined
        ? []
        : [
            (next) => (request) => {
              request.header.set("authorization", `Bearer ${bearer}`);
              return next(request);
            },
          ],
  });
  return {
    commy: createClient(CommyService, transport),
    identity: createClient(IdentityService, transport),
    close: () => sessionManager.abort(),
  };
}

async function codeOf(call: Promise<unknown>): Promise<Code> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error).code;
  }
  throw new Error("the call succeeded");
}

let server: TestServer;

beforeAll(async () => {
  openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    "/CN=test CA",
    "-days",
    "1",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  ]);
  const extfile = file("server.ext");
  execFileSync("sh", ["-c", `printf 'subjectAltName=IP:127.0.0.1\\n' > '${extfile}'`]);
  issue("server", "/CN=localhost", ["-extfile", extfile]);
  issue("alice", "/CN=acme\\/alice");
  issue("nobody", "/CN=acme\\/nobody");
  issue("forged", "/CN=acme\\/alice", [], true);
  server = await startTestServer({
    config: {
      tlsCert: file("server.pem"),
      tlsKey: file("server.key"),
      tlsClientCa: file("ca.pem"),
    },
  });
  const admin = clientOf(server, undefined, testAdminToken());
  try {
    await admin.commy.createTenant({ tenantId: "acme" });
    await admin.commy.createService({ tenantId: "acme", serviceName: "config" });
    await admin.identity.createPrincipal({ tenantId: "acme", name: "alice" });
    await admin.identity.grantPermission({
      tenantId: "acme",
      principalName: "alice",
      permission: WIRE_PERMISSION["service:read"],
      servicePrefix: "",
    });
  } finally {
    admin.close();
  }
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("client certificates", () => {
  it("authenticate the principal their CN names, with its grants only", async () => {
    const alice = clientOf(server, "alice");
    try {
      const got = await alice.commy.getService({ tenantId: "acme", serviceName: "config" });
      expect(got.service?.serviceName).toBe("config");
      expect(await codeOf(alice.commy.createService({ tenantId: "acme", serviceName: "x" }))).toBe(
        Code.PermissionDenied,
      );
      const me = await alice.identity.whoAmI({});
      expect(me.principal?.principalId).toBe("acme/alice");
    } finally {
      alice.close();
    }
  });

  it("without a certificate, with one for an unknown principal, or one the CA did not sign: unauthenticated", async () => {
    for (const identity of [undefined, "nobody", "forged"]) {
      const client = clientOf(server, identity);
      try {
        expect(
          await codeOf(client.commy.getService({ tenantId: "acme", serviceName: "config" })),
          String(identity),
        ).toBe(Code.Unauthenticated);
      } finally {
        client.close();
      }
    }
  });

  it("a bearer token still works, and wins over a certificate", async () => {
    const both = clientOf(server, "alice", testAdminToken());
    try {
      // As the admin, not as alice: creating a service is allowed.
      await both.commy.createService({ tenantId: "acme", serviceName: "by-token" });
    } finally {
      both.close();
    }
  });
});
