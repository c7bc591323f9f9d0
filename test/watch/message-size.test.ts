/**
 * Change batches stay within the server's message size limit
 * (`--max-message-bytes`): a client's own limit, often the same 4 MiB, is
 * never met by a batch of many large values, which are split into several
 * messages instead.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ChangeKind } from "../../gen/commy/v1/watch_pb.js";
import { RawGrpcWatch, createService } from "../helpers/watch-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";

const LIMIT = 64 * 1024;
const VALUE_BYTES = 16 * 1024;
const VARIABLES = 12;

let test: TestServer | undefined;
let raw: RawGrpcWatch | undefined;

afterEach(async () => {
  raw?.close();
  raw = undefined;
  await test?.close();
  test = undefined;
});

describe("change batches under a small message size limit", () => {
  it("a service's snapshot of 12 × 16 KiB comes in several messages, none over 64 KiB", async () => {
    test = await startTestServer({ config: { maxMessageBytes: LIMIT } });
    const values = Object.fromEntries(
      Array.from({ length: VARIABLES }, (_, i) => [`v${i}`, String(i % 10).repeat(VALUE_BYTES)]),
    );
    await createService(test.connectClient("connect", "2"), "t", "s", values);
    const watch = new RawGrpcWatch(test.server.url);
    raw = watch;
    watch.send({
      case: "subscribe",
      value: { requestId: "1", subscription: { tenantId: "t", serviceName: "s" } },
    });
    await watch.nextResponse(() => watch.changes.length >= VARIABLES, "every snapshot");
    expect(watch.changes.map((c) => c.kind)).toEqual(Array(VARIABLES).fill(ChangeKind.SNAPSHOT));
    expect(watch.changes.map((c) => c.data.length)).toEqual(Array(VARIABLES).fill(VALUE_BYTES));
    expect(Math.max(...watch.messageSizes)).toBeLessThanOrEqual(LIMIT);
    const batches = watch.responses.filter((r) => r.event.case === "changes").length;
    expect(batches).toBeGreaterThanOrEqual(Math.ceil((VARIABLES * VALUE_BYTES) / LIMIT));
  });
});
