/**
 * Errors that only a service file in trouble can cause, provoked the way
 * they happen in the field — by another process touching the file under
 * the running server, at the offsets docs/file-format.md documents:
 * - INTERNAL_ERROR: a damaged file (a value slot pointing past its end).
 *   The client gets internal / INTERNAL_ERROR with no path or stack trace,
 *   and the server goes on serving.
 * - TIMEOUT: a local writer that holds a variable's lock and does not let
 *   go (a live process, stopped mid-write). The write fails with
 *   deadline_exceeded / TIMEOUT and changes nothing.
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import {
  decodeRpcStatus,
  errorDetailsOf,
  expectCommyError,
  expectNoServerInternals,
  rejectionOf,
} from "../helpers/error-details.js";
import { TRANSPORTS, type TestServer, startTestServer } from "../helpers/test-server.js";
import type { ServiceError } from "@grpc/grpc-js";

/** docs/file-format.md: header, name index and variable record offsets. */
const INDEX_OFFSET = 44;
const INDEX_SLOTS = 16;
const RECORD_LOCK = 8;
const RECORD_CTL = 12;
const RECORD_NAME_LENGTH = 16;
const RECORD_SLOT0 = 24;
const RECORD_SLOT1 = 44;
const RECORD_NAME = 64;

/** The offset of the record of `name` in a service file's bytes. */
function findRecord(file: Buffer, name: string): number {
  const index = file.readUInt32LE(INDEX_OFFSET);
  const capacity = file.readUInt32LE(index);
  for (let i = 0; i < capacity; i++) {
    const record = file.readUInt32LE(index + INDEX_SLOTS + 4 * i);
    if (record <= 1) continue;
    const length = file.readUInt32LE(record + RECORD_NAME_LENGTH);
    const found = file.toString("latin1", record + RECORD_NAME, record + RECORD_NAME + length);
    if (found === name) return record;
  }
  throw new Error(`no record of ${name} in the service file`);
}

/** Writes one little-endian u32 into the file, as another process would. */
function pokeU32(path: string, offset: number, value: number): void {
  const fd = openSync(path, "r+");
  try {
    const word = Buffer.alloc(4);
    word.writeUInt32LE(value);
    writeSync(fd, word, 0, 4, offset);
  } finally {
    closeSync(fd);
  }
}

/** Points the slot the next write of `name` goes to past the end of the file. */
function corruptSpareSlot(path: string, name: string): void {
  const file = readFileSync(path);
  const record = findRecord(file, name);
  const current = file.readUInt32LE(record + RECORD_CTL) & 1;
  pokeU32(path, record + (current === 1 ? RECORD_SLOT0 : RECORD_SLOT1), 0xfffff000);
}

/** Sets (or, with 0, clears) the writer lock of `name` to the pid `holder`. */
function setLock(path: string, name: string, holder: number): void {
  pokeU32(path, findRecord(readFileSync(path), name) + RECORD_LOCK, holder);
}

describe("INTERNAL_ERROR", () => {
  let test: TestServer;
  let path: string;
  const ref = { tenantId: "t", serviceName: "s", variableName: "damaged" };

  beforeEach(async () => {
    test = await startTestServer();
    const admin = test.connectClient("connect", "1.1");
    await admin.createTenant({ tenantId: "t" });
    const { service } = await admin.createService(ref);
    await admin.allocateVariable({ ...ref, initialData: new TextEncoder().encode("intact") });
    path = join(test.dataDir, "services", `${service?.serviceId ?? "?"}.commy`);
    corruptSpareSlot(path, "damaged");
  });

  afterEach(async () => {
    await test.close();
  });

  it.each(TRANSPORTS)(
    "over $name: internal with an INTERNAL_ERROR detail, no path, no stack trace",
    async (transport) => {
      const client = test.connectClient(transport.protocol, transport.httpVersion, {
        binary: transport.binary,
      });
      const error = await expectCommyError(
        client.writeVariable({ ...ref, data: new Uint8Array([1]) }),
        Code.Internal,
        ErrorCode.INTERNAL_ERROR,
      );
      expectNoServerInternals(error.message, test.dataDir);
      expect(error.message).not.toContain(path);

      // The server still serves, and the last good value is still readable.
      const read = await client.readVariable(ref);
      expect(Buffer.from(read.data).toString()).toBe("intact");
      expect((await client.listTenants({})).tenants.map((t) => t.tenantId)).toEqual(["t"]);
    },
  );

  it("over grpc-js: status INTERNAL and the same detail in grpc-status-details-bin", async () => {
    const client = test.grpcJsClient();
    const error = (await client
      .call("WriteVariable", {
        tenant_id: ref.tenantId,
        service_name: ref.serviceName,
        variable_name: ref.variableName,
        data: Buffer.from([1]),
      })
      .then(
        () => expect.fail("the write succeeded"),
        (e: unknown) => e,
      )) as ServiceError;
    expect(error.code).toBe(13);
    // The id the failure is logged under comes back to the client.
    expect(String(error.metadata.get("x-request-id")[0] ?? "")).toMatch(/^[0-9a-f-]{36}$/);
    expectNoServerInternals(error.details, test.dataDir);
    const [raw] = error.metadata.get("grpc-status-details-bin");
    const status = decodeRpcStatus(raw as Buffer);
    expect(status.code).toBe(13);
    expectNoServerInternals(status.message, test.dataDir);
    expect(errorDetailsOf(status).map((d) => d.code)).toEqual([ErrorCode.INTERNAL_ERROR]);
  });
});

describe("TIMEOUT", () => {
  let test: TestServer;
  let path: string;
  const ref = { tenantId: "t", serviceName: "s", variableName: "held" };

  beforeEach(async () => {
    test = await startTestServer();
    const admin = test.connectClient("connect", "1.1");
    await admin.createTenant({ tenantId: "t" });
    const { service } = await admin.createService(ref);
    await admin.allocateVariable({ ...ref, initialData: new TextEncoder().encode("before") });
    path = join(test.dataDir, "services", `${service?.serviceId ?? "?"}.commy`);
    // A live process other than the server (the test runner) "holds" the variable.
    setLock(path, "held", process.ppid);
  });

  afterEach(async () => {
    await test.close();
  });

  it("a write to a variable a live local process keeps locked is deadline_exceeded / TIMEOUT", async () => {
    const client = test.connectClient("grpc", "2");
    await expectCommyError(
      client.writeVariable({ ...ref, data: new Uint8Array([1]) }),
      Code.DeadlineExceeded,
      ErrorCode.TIMEOUT,
    );
    // Reads take no lock: the old value is there, unchanged.
    const read = await client.readVariable(ref);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "before",
      version: 1n,
    });
    // Once the holder lets go, writes go through again.
    setLock(path, "held", 0);
    expect((await client.writeVariable({ ...ref, data: new Uint8Array([2]) })).version).toBe(2n);
  });

  it("a write whose deadline passes while it waits for the lock fails and is never applied later", async () => {
    const client = test.connectClient("connect", "2", { binary: true });
    const failed = await rejectionOf(
      client.writeVariable({ ...ref, data: new Uint8Array([9]) }, { timeoutMs: 200 }),
    );
    expect(failed.code).toBe(Code.DeadlineExceeded);
    // The server's side of the call ends at its deadline too, not at the
    // lock wait's 2 s: its metrics count it among the calls under 1 s.
    const endedWithin1s = async (): Promise<boolean> => {
      const text = await (await fetch(`${test.server.url}/metrics`)).text();
      return text.includes(
        'commy_rpc_duration_seconds_bucket{le="1",method="/commy.v1.CommyService/WriteVariable"} 1',
      );
    };
    for (let tries = 0; !(await endedWithin1s()); tries++) {
      if (tries > 300) throw new Error("the server did not end the write at its deadline");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // …so once the holder lets go, nothing from that call lands.
    setLock(path, "held", 0);
    const read = await client.readVariable(ref);
    expect({ data: Buffer.from(read.data).toString(), version: read.version }).toEqual({
      data: "before",
      version: 1n,
    });
  });

  it("other calls are served while a write waits for a variable's lock", async () => {
    // One HTTP/2 connection, already open: the write reaches the server first.
    const client = test.connectClient("connect", "2", { binary: true });
    await client.readVariable(ref);
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const write = client.writeVariable({ ...ref, data: new Uint8Array([1]) }).then(
      () => elapsed(),
      () => elapsed(),
    );
    const list = client.listTenants({}).then(() => elapsed());
    const [writeMs, listMs] = await Promise.all([write, list]);
    // The write waits for the lock (seconds); an unrelated call must not wait with it.
    expect(writeMs).toBeGreaterThan(1000);
    expect(listMs).toBeLessThan(writeMs / 2);
  });
});
