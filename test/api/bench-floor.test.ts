/**
 * The bench EchoService's fan-out floor (Broadcast → Listen), which the
 * stream benchmark holds Commy's Watch fan-out against: a floor that lost
 * or reordered payloads would make that comparison meaningless. Over
 * gRPC/HTTP/2 the handler writes to the streams itself; over Connect JSON
 * on HTTP/1.1 connect's own pipeline does.
 */
import { type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EchoService, type ListenResponse } from "../../gen/commy/bench/v1/echo_pb.js";
import { credentialHeaders, startTestServer, type TestServer } from "../helpers/test-server.js";

type EchoClient = Client<typeof EchoService>;

let server: TestServer;
const sessions: Http2SessionManager[] = [];
const aborts: AbortController[] = [];

beforeEach(async () => {
  server = await startTestServer({ benchEcho: true });
});

afterEach(async () => {
  for (const abort of aborts.splice(0)) abort.abort();
  for (const session of sessions.splice(0)) session.abort();
  await server.close();
});

const withAdmin: Interceptor = (next) => (request) => {
  for (const [name, value] of Object.entries(credentialHeaders())) request.header.set(name, value);
  return next(request);
};
const withCredentials = { interceptors: [withAdmin] };

function grpcClient(): EchoClient {
  const session = new Http2SessionManager(server.baseUrl);
  sessions.push(session);
  const transport: Transport = createGrpcTransport({
    baseUrl: server.baseUrl,
    sessionManager: session,
    ...withCredentials,
  });
  return createClient(EchoService, transport);
}

function connectJsonClient(): EchoClient {
  const transport = createConnectTransport({
    baseUrl: server.baseUrl,
    httpVersion: "1.1",
    ...withCredentials,
  });
  return createClient(EchoService, transport);
}

/** A Listen stream, read into `received` once its first (empty) message has come. */
async function listen(
  client: EchoClient,
): Promise<{ received: Uint8Array[]; next(n: number): Promise<void> }> {
  const abort = new AbortController();
  aborts.push(abort);
  const iterator = client.listen({}, { signal: abort.signal })[Symbol.asyncIterator]();
  const first = await iterator.next();
  expect(first.done).toBe(false);
  expect((first.value as ListenResponse).payload).toHaveLength(0);
  const received: Uint8Array[] = [];
  return {
    received,
    async next(n: number) {
      for (let i = 0; i < n; i++) {
        const result = await iterator.next();
        if (result.done === true) throw new Error("the Listen stream ended");
        received.push(result.value.payload);
      }
    },
  };
}

async function* payloads(count: number): AsyncGenerator<{ payload: Uint8Array }> {
  for (let i = 1; i <= count; i++) yield { payload: new Uint8Array([i, i + 1, i + 2]) };
}

/** How many answers a Broadcast call got before it ended. */
async function answersTo(answers: AsyncIterable<unknown>): Promise<number> {
  let count = 0;
  for await (const answer of answers) if (answer !== undefined) count++;
  return count;
}

describe("EchoService Broadcast and Listen (the bench's fan-out floor)", () => {
  it("every listener receives every payload once, in order, and each broadcast is answered", async () => {
    const listeners = [
      await listen(grpcClient()),
      await listen(grpcClient()),
      await listen(connectJsonClient()),
    ];
    expect(await answersTo(grpcClient().broadcast(payloads(20)))).toBe(20);
    for (const listener of listeners) {
      await listener.next(20);
      expect(listener.received.map((payload) => payload[0])).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      expect(listener.received[4]).toEqual(new Uint8Array([5, 6, 7]));
    }
  });

  it("a listener that went away ends its stream; the others still receive", async () => {
    const leaving = await listen(grpcClient());
    const staying = await listen(grpcClient());
    aborts[0]?.abort();
    await expect(leaving.next(1)).rejects.toThrow();
    expect(await answersTo(grpcClient().broadcast(payloads(3)))).toBe(3);
    await staying.next(3);
    expect(staying.received.map((payload) => payload[0])).toEqual([1, 2, 3]);
  });

  it("server shutdown ends open Listen streams cleanly", async () => {
    const listener = await listen(grpcClient());
    await server.close();
    // Ended by the handler with status OK, not cut when the grace period ran out.
    await expect(listener.next(1)).rejects.toThrow("the Listen stream ended");
  });
});
