import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ChangeBatchSchema,
  ChangeKind,
  SubscribeResponseSchema,
  WatchResponseSchema,
} from "../../gen/commy/v1/watch_pb.js";
import type { ChangeEvent } from "../core/watch-session.js";
import {
  changeBatchEnvelope,
  changeBatchField,
  encodeChangeBatchField,
  envelope,
  okReplyEnvelope,
} from "./watch-wire-encoding.js";

const KINDS = {
  snapshot: ChangeKind.SNAPSHOT,
  update: ChangeKind.UPDATE,
  deleted: ChangeKind.DELETED,
};

const bytes = (text: string) => new TextEncoder().encode(text);

function event(fields: Partial<ChangeEvent>): ChangeEvent {
  return {
    subscriptionId: 1,
    tenantId: "t",
    serviceName: "s",
    variableName: "x",
    data: bytes("value"),
    version: 1,
    skipped: 0,
    kind: "update",
    source: undefined,
    ...fields,
  };
}

/** What protobuf-es encodes for the same changes. */
function expected(changes: ChangeEvent[]) {
  return create(ChangeBatchSchema, {
    changes: changes.map((c) => ({
      subscriptionId: BigInt(c.subscriptionId),
      variableName: c.variableName,
      data: c.data,
      version: BigInt(c.version),
      skipped: BigInt(c.skipped),
      kind: KINDS[c.kind],
    })),
  });
}

/** The field's value is the batch's length, then the batch. */
function decodeField(bytes: Uint8Array) {
  let length = 0;
  let shift = 1;
  let at = 0;
  for (;;) {
    const byte = bytes[at++] as number;
    length += (byte & 0x7f) * shift;
    shift *= 0x80;
    if (byte < 0x80) break;
  }
  expect(bytes.length - at).toBe(length);
  return fromBinary(ChangeBatchSchema, bytes.subarray(at));
}

describe("encodeChangeBatchField", () => {
  it("decodes to the batch protobuf-es would send, every field and kind", () => {
    const changes = [
      event({ subscriptionId: 7, variableName: "x", version: 3, kind: "snapshot" }),
      event({ subscriptionId: 300, variableName: "grüße/ü", version: 2 ** 40, skipped: 129 }),
      event({ variableName: "gone", data: new Uint8Array(0), version: 9, kind: "deleted" }),
      event({ data: new Uint8Array(200_000).fill(7), version: 2 ** 53 - 1 }),
    ];
    expect(decodeField(encodeChangeBatchField(changes))).toEqual(expected(changes));
  });

  it("shares one read among subscribers, and keeps their own ids and skips", () => {
    const data = bytes("shared");
    const source = { data: Buffer.from(data), version: 5, memo: undefined };
    const changes = [1, 2, 3].map((id) =>
      event({ subscriptionId: id, data, version: 5, skipped: id - 1, source }),
    );
    expect(decodeField(encodeChangeBatchField(changes))).toEqual(expected(changes));
    expect(source.memo, "the shared fields, kept for the next subscriber").toBeDefined();
    // A snapshot of the same read is encoded as itself, not from the update's memo.
    const other = [event({ subscriptionId: 4, data, version: 5, kind: "snapshot", source })];
    expect(decodeField(encodeChangeBatchField(other))).toEqual(expected(other));
  });

  it("is the `changes` field of WatchResponse and SubscribeResponse on the wire", () => {
    const changes = [event({ subscriptionId: 2 }), event({ subscriptionId: 3, version: 4 })];
    const watch = toBinary(WatchResponseSchema, {
      $typeName: "commy.v1.WatchResponse",
      event: { case: undefined },
      $unknown: [changeBatchField(2, changes)],
    });
    expect(fromBinary(WatchResponseSchema, watch).event).toEqual({
      case: "changes",
      value: expected(changes),
    });
    const subscribe = toBinary(SubscribeResponseSchema, {
      $typeName: "commy.v1.SubscribeResponse",
      event: { case: undefined },
      $unknown: [changeBatchField(1, changes)],
    });
    expect(fromBinary(SubscribeResponseSchema, subscribe).event).toEqual({
      case: "changes",
      value: expected(changes),
    });
  });
});

/** The message inside one envelope, after checking its prefix. */
function unwrap(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(view.getUint8(0), "flags").toBe(0);
  expect(view.getUint32(1), "length").toBe(bytes.length - 5);
  return bytes.subarray(5);
}

describe("envelopes", () => {
  it("changeBatchEnvelope is one whole response message behind gRPC's 5-byte prefix", () => {
    const changes = [
      event({ subscriptionId: 2 }),
      event({ subscriptionId: 3, data: new Uint8Array(70_000).fill(1), version: 4 }),
    ];
    expect(fromBinary(WatchResponseSchema, unwrap(changeBatchEnvelope(2, changes))).event).toEqual({
      case: "changes",
      value: expected(changes),
    });
    expect(
      fromBinary(SubscribeResponseSchema, unwrap(changeBatchEnvelope(1, changes))).event,
    ).toEqual({ case: "changes", value: expected(changes) });
  });

  it("a change alone is one envelope for every subscriber with its subscription id and no skip", () => {
    const data = bytes("shared");
    const source = { data: Buffer.from(data), version: 5, memo: undefined };
    const change = (fields: Partial<ChangeEvent>) => [
      event({ subscriptionId: 1, data, version: 5, source, ...fields }),
    ];
    const first = changeBatchEnvelope(2, change({}));
    expect(changeBatchEnvelope(2, change({})), "the same subscription id: the same bytes").toBe(
      first,
    );
    const cases = [
      { fields: { subscriptionId: 2 }, field: 2, why: "another subscription id" },
      { fields: { skipped: 3 }, field: 2, why: "a skip" },
      { fields: {}, field: 1, why: "another response message (Subscribe)" },
      { fields: { kind: "snapshot" as const }, field: 2, why: "a snapshot of the same read" },
    ];
    for (const { fields, field, why } of cases) {
      const changes = change(fields);
      const bytes = changeBatchEnvelope(field, changes);
      expect(bytes, why).not.toBe(first);
      const schema = field === 2 ? WatchResponseSchema : SubscribeResponseSchema;
      expect(fromBinary(schema, unwrap(bytes)).event, why).toEqual({
        case: "changes",
        value: expected(changes),
      });
    }
    expect(fromBinary(WatchResponseSchema, unwrap(first)).event).toEqual({
      case: "changes",
      value: expected(change({})),
    });
    // Subscribe (field 1) with id 2^32 + 1 would have Watch's id 1 key were it shared.
    const kept = changeBatchEnvelope(2, change({}));
    const far = change({ subscriptionId: 2 ** 32 + 1 });
    const farBytes = changeBatchEnvelope(1, far);
    expect(farBytes, "an id past the shared key's range").not.toBe(kept);
    expect(fromBinary(SubscribeResponseSchema, unwrap(farBytes)).event).toEqual({
      case: "changes",
      value: expected(far),
    });
  });

  it("okReplyEnvelope is the WatchResponse protobuf-es would send for a reply without error", () => {
    for (const [requestId, subscriptionId, version] of [
      ["w-1", 0, 7],
      ["grüße", 300, 2 ** 53 - 1],
      ["", 0, 0],
    ] as const) {
      const reply = create(WatchResponseSchema, {
        event: {
          case: "reply",
          value: { requestId, subscriptionId: BigInt(subscriptionId), version: BigInt(version) },
        },
      });
      expect(
        fromBinary(
          WatchResponseSchema,
          unwrap(okReplyEnvelope(requestId, subscriptionId, version)),
        ),
      ).toEqual(reply);
    }
  });

  it("envelope wraps any encoded message, an empty one included", () => {
    const pong = create(WatchResponseSchema, {
      event: { case: "pong", value: { requestId: "r1" } },
    });
    expect(
      fromBinary(WatchResponseSchema, unwrap(envelope(toBinary(WatchResponseSchema, pong)))),
    ).toEqual(pong);
    expect(envelope(new Uint8Array(0))).toEqual(new Uint8Array(5));
  });
});
