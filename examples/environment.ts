/**
 * Where the examples find their server: COMMY_URL and COMMY_TOKEN (the
 * server admin's token), e.g.
 *
 *   COMMY_URL=http://127.0.0.1:8080 COMMY_TOKEN=$(cat commy-data/admin-token) \
 *     node --import tsx examples/basic.ts
 */
import { randomBytes } from "node:crypto";

/** The server to talk to and the admin token to talk with. */
export interface ExampleServer {
  baseUrl: string;
  token: string;
}

/** The server named by COMMY_URL and COMMY_TOKEN; exits with a usage message when one is missing. */
export function serverFromEnvironment(): ExampleServer {
  const baseUrl = process.env.COMMY_URL ?? "";
  const token = process.env.COMMY_TOKEN ?? "";
  if (baseUrl === "" || token === "") {
    console.error(
      "Set COMMY_URL (e.g. http://127.0.0.1:8080) and COMMY_TOKEN (the server admin's token,\n" +
        "e.g. $(cat commy-data/admin-token)) to run this example against a running server.",
    );
    process.exit(2);
  }
  return { baseUrl, token };
}

/** A tenant id no other run uses, so that an example can run again on the same server. */
export function freshTenantId(example: string): string {
  return `example-${example}-${randomBytes(4).toString("hex")}`;
}

/** UTF-8 text as the bytes a variable holds. */
export const encode = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A variable's bytes as UTF-8 text. */
export const decode = (data: Uint8Array): string => new TextDecoder().decode(data);
