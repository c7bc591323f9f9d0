/**
 * Graceful shutdown while clients write as fast as they can: every call
 * either gets its whole answer or a clean "server going away" status (never
 * a cut-off body), the process exits 0, and a restart on the same data
 * directory finds every acknowledged write.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  type CommyClient,
  type Protocol,
  type HttpVersion,
  createClientFactory,
  createTestDataDir,
  startChildServer,
} from "../helpers/test-server.js";

const TENANT = "down";
const SERVICE = "s";
const WRITERS: { protocol: Protocol; httpVersion: HttpVersion }[] = [
  { protocol: "connect", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1" },
  { protocol: "grpc", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "1.1" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "grpc", httpVersion: "2" },
];
/** Acknowledged writes each writer makes before the shutdown starts. */
const WARM_ACKS = 20;
/** A writer stops by itself after this many writes (bounded loop). */
const MAX_WRITES = 100_000;
/** What a call cut by a stopping server may end with: the server went away, cleanly. */
const CLEAN_ENDINGS = new Set([Code.Unavailable, Code.Canceled, Code.Unknown]);
/**
 * Socket errors of a request written to, or a connection opened towards, a
 * server that has already closed it: nothing of an answer was received
 * (connect-node reports some of these as "internal").
 */
const CONNECTION_GONE = new Set(["EPIPE", "ECONNRESET", "ECONNREFUSED"]);

function endedCleanly(error: ConnectError): boolean {
  if (CLEAN_ENDINGS.has(error.code)) return true;
  // HTTP/2's "not processed, try again" for streams opened after GOAWAY.
  if (error.message.includes("NGHTTP2_REFUSED_STREAM")) return true;
  const cause = error.cause as { code?: unknown } | undefined;
  return typeof cause?.code === "string" && CONNECTION_GONE.has(cause.code);
}

const value = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);

interface WriterResult {
  acked: number;
  lastAckedVersion: bigint;
  lastAckedValue: number;
  ending: ConnectError | undefined;
}

async function writeUntilRefused(
  client: CommyClient,
  variableName: string,
  onWarm: () => void,
): Promise<WriterResult> {
  const result: WriterResult = {
    acked: 0,
    lastAckedVersion: 0n,
    lastAckedValue: -1,
    ending: undefined,
  };
  for (let n = 0; n < MAX_WRITES; n++) {
    try {
      const written = await client.writeVariable({
        tenantId: TENANT,
        serviceName: SERVICE,
        variableName,
        data: value(n),
      });
      result.acked++;
      result.lastAckedVersion = written.version;
      result.lastAckedValue = n;
      if (result.acked === WARM_ACKS) onWarm();
    } catch (error) {
      result.ending = ConnectError.from(error);
      if (result.acked < WARM_ACKS) onWarm();
      return result;
    }
  }
  return result;
}

describe("shutdown under load", () => {
  it("answers every call whole or with a clean status, exits 0, and keeps every acknowledged write", async () => {
    const dir = createTestDataDir();
    try {
      const started = await startChildServer(dir.path);
      if ("failed" in started) throw new Error(started.failed.message);
      const server = started.server;
      const setup = server.connectClient("connect", "2");
      await setup.createTenant({ tenantId: TENANT });
      await setup.createService({ tenantId: TENANT, serviceName: SERVICE });
      for (let i = 0; i < WRITERS.length; i++) {
        await setup.allocateVariable({
          tenantId: TENANT,
          serviceName: SERVICE,
          variableName: `v${i}`,
          initialData: value(0),
        });
      }
      // The load's clients are not the child's: killing it must not close them first.
      const load = createClientFactory(server.baseUrl);
      let warm = 0;
      let allWarm = (): void => undefined;
      const warmedUp = new Promise<void>((resolve) => (allWarm = resolve));
      const onWarm = (): void => {
        if (++warm === WRITERS.length) allWarm();
      };
      const writers = WRITERS.map((choice, i) =>
        writeUntilRefused(
          load.connectClient(choice.protocol, choice.httpVersion, { binary: i % 2 === 0 }),
          `v${i}`,
          onWarm,
        ),
      );
      await warmedUp;
      const exit = await server.kill("SIGTERM");
      const results = await Promise.all(writers);
      load.closeClients();
      expect(exit).toEqual({ code: 0, signal: null });
      for (const [i, result] of results.entries()) {
        const label = `${WRITERS[i]?.protocol} over HTTP/${WRITERS[i]?.httpVersion}`;
        expect(result.acked, label).toBeGreaterThanOrEqual(WARM_ACKS);
        expect(result.ending, label).toBeDefined();
        const ending = result.ending as ConnectError;
        expect(endedCleanly(ending), `${label}: ${String(ending)}`).toBe(true);
      }

      const restarted = await startChildServer(dir.path);
      if ("failed" in restarted) throw new Error(restarted.failed.message);
      try {
        const reader = restarted.server.connectClient("connect", "2");
        for (const [i, result] of results.entries()) {
          const read = await reader.readVariable({
            tenantId: TENANT,
            serviceName: SERVICE,
            variableName: `v${i}`,
          });
          // A write in flight when the server stopped may have been applied unacknowledged.
          expect(read.version - result.lastAckedVersion).toBeGreaterThanOrEqual(0n);
          expect(read.version - result.lastAckedVersion).toBeLessThanOrEqual(1n);
          if (read.version === result.lastAckedVersion) {
            expect(read.data).toEqual(value(result.lastAckedValue));
          }
        }
      } finally {
        await restarted.server.kill("SIGTERM");
      }
    } finally {
      dir.remove();
    }
  });
});
