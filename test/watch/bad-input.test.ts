/**
 * Bad input on a Watch stream (no crash on bad input): a frame that is not
 * a WatchRequest, a compressed frame nobody agreed on, a frame beyond the
 * message size limit, and a stream cut in the middle of a frame each end
 * the call with a clear status, and the server serves the next stream.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../../gen/commy/v1/errors_pb.js";
import { type RawGrpcWatch, serverPerTest } from "../helpers/watch-fixtures.js";

const perTest = serverPerTest();

function frame(flags: number, body: Uint8Array, length = body.length): Buffer {
  const bytes = Buffer.alloc(5 + body.length);
  bytes[0] = flags;
  bytes.writeUInt32BE(length, 1);
  bytes.set(body, 5);
  return bytes;
}

async function open(): Promise<RawGrpcWatch> {
  return perTest.raw(await perTest.server());
}

/** The status a call ended with: gRPC code and the ErrorCodes of its details. */
async function ending(raw: RawGrpcWatch) {
  const status = await raw.status();
  return { status: status.grpcStatus, codes: status.details.map((d) => d.code) };
}

const invalid = { status: Code.InvalidArgument, codes: [ErrorCode.INVALID_REQUEST] };

/** After a bad stream, a good one on a new connection still works. */
async function serverStillServes(): Promise<void> {
  const raw = await open();
  raw.send({ case: "ping", value: { requestId: "after" } });
  await raw.nextResponse((r) => r.event.case === "pong", "a pong");
}

describe("a Watch stream with bad input", () => {
  it("ends with INVALID_ARGUMENT when a frame is not a WatchRequest", async () => {
    const raw = await open();
    raw.send({ case: "ping", value: { requestId: "before" } });
    await raw.nextResponse((r) => r.event.case === "pong", "the pong before");
    raw.sendRaw(frame(0, Uint8Array.of(0xff, 0xff, 0xff, 0xff)));
    expect(await ending(raw)).toEqual(invalid);
    await serverStillServes();
  });

  it("ends with INVALID_ARGUMENT when a frame says it is compressed", async () => {
    const raw = await open();
    raw.sendRaw(frame(1, Uint8Array.of(1, 2, 3)));
    expect(await ending(raw)).toEqual(invalid);
    await serverStillServes();
  });

  it("ends with RESOURCE_EXHAUSTED when a frame announces more than the message limit", async () => {
    const raw = await open();
    raw.sendRaw(frame(0, new Uint8Array(16), 64 * 1024 * 1024));
    expect(await ending(raw)).toEqual({
      status: Code.ResourceExhausted,
      codes: [ErrorCode.RESOURCE_EXHAUSTED],
    });
    await serverStillServes();
  });

  it("ends with INVALID_ARGUMENT when the client's side ends in the middle of a frame", async () => {
    const raw = await open();
    raw.sendRaw(frame(0, new Uint8Array(4), 10));
    raw.end();
    expect(await ending(raw)).toEqual(invalid);
    await serverStillServes();
  });
});
