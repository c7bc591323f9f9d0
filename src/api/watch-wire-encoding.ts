/**
 * Internal: change batches of Watch and Subscribe responses, encoded by hand
 * as protobuf bytes. A change of one variable goes to every subscriber of
 * it; what all of them share (`variable_name`, `data`, `version`, `kind`)
 * is encoded once, and only `subscription_id` and `skipped` are written per
 * subscriber — protobuf fields may come in any order, and concatenated
 * encodings are one valid message. The result is identical on the wire to
 * `toBinary(ChangeBatchSchema, …)` up to field order.
 */
import type { UnknownField } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import type { ChangeEvent } from "../core/watch-session.js";

/** commy.v1.ChangeKind, by the session's names. */
const KIND_NUMBERS: Record<ChangeEvent["kind"], number> = {
  snapshot: 1,
  update: 2,
  deleted: 3,
};

// Tags (field number << 3 | wire type) of commy.v1.Change and ChangeBatch.
const TAG_SUBSCRIPTION_ID = (1 << 3) | WireType.Varint;
const TAG_VARIABLE_NAME = (2 << 3) | WireType.LengthDelimited;
const TAG_DATA = (3 << 3) | WireType.LengthDelimited;
const TAG_VERSION = (4 << 3) | WireType.Varint;
const TAG_SKIPPED = (5 << 3) | WireType.Varint;
const TAG_KIND = (6 << 3) | WireType.Varint;
const TAG_BATCH_CHANGES = (1 << 3) | WireType.LengthDelimited;

const utf8 = new TextEncoder();

/**
 * The encodings of one shared read, kept in its `memo` for every
 * subscriber of the change: the fields they all have, and the last whole
 * envelope of a batch of this change alone, which is the same bytes for
 * every subscriber with the same subscription id and nothing skipped (a
 * client's first subscription is id 1 on each stream).
 */
class ChangeEncodings {
  envelope: Uint8Array | undefined;
  /** What `envelope` was made for (see envelopeKey). */
  envelopeKey = -1;
  constructor(readonly fields: Uint8Array) {}
}

/**
 * The feed hands one read of a variable to every subscriber of a change,
 * and its `memo` keeps the encodings for all of them. Only updates share
 * them: a snapshot or a deletion is a read or an event of its own.
 */
function encodings(change: ChangeEvent): ChangeEncodings | undefined {
  const source = change.source;
  if (source === undefined || change.kind !== "update") return undefined;
  if (source.memo instanceof ChangeEncodings) return source.memo;
  const memo = new ChangeEncodings(encodeSharedFields(change));
  source.memo = memo;
  return memo;
}

function sharedFields(change: ChangeEvent): Uint8Array {
  return encodings(change)?.fields ?? encodeSharedFields(change);
}

/** Fields 2, 3, 4 and 6 of commy.v1.Change; proto3 leaves default values out. */
function encodeSharedFields(change: ChangeEvent): Uint8Array {
  const name = encodeName(change.variableName);
  const kind = KIND_NUMBERS[change.kind];
  let size = 0;
  if (name.length > 0) size += 1 + varintSize(name.length) + name.length;
  if (change.data.length > 0) size += 1 + varintSize(change.data.length) + change.data.length;
  if (change.version !== 0) size += 1 + varintSize(change.version);
  size += 1 + varintSize(kind);
  const bytes = new Uint8Array(size);
  let at = 0;
  if (name.length > 0) {
    bytes[at++] = TAG_VARIABLE_NAME;
    at = writeVarint(bytes, at, name.length);
    bytes.set(name, at);
    at += name.length;
  }
  if (change.data.length > 0) {
    bytes[at++] = TAG_DATA;
    at = writeVarint(bytes, at, change.data.length);
    bytes.set(change.data, at);
    at += change.data.length;
  }
  if (change.version !== 0) {
    bytes[at++] = TAG_VERSION;
    at = writeVarint(bytes, at, change.version);
  }
  bytes[at++] = TAG_KIND;
  writeVarint(bytes, at, kind);
  return bytes;
}

/** UTF-8; names are mostly ASCII, which is copied without TextEncoder's call overhead. */
function encodeName(name: string): Uint8Array {
  const bytes = new Uint8Array(name.length);
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 0x80) return utf8.encode(name);
    bytes[i] = code;
  }
  return bytes;
}

/** Field 1 and, when not 0, field 5 of commy.v1.Change. */
function ownFieldsSize(change: ChangeEvent): number {
  let size = 1 + varintSize(change.subscriptionId);
  if (change.skipped !== 0) size += 1 + varintSize(change.skipped);
  return size;
}

/**
 * A ChangeBatch as the length-delimited value of the response's `changes`
 * field: its length, then the batch. Reused encodings of shared fields are
 * copied, never referenced, so the result owns its bytes.
 */
export function encodeChangeBatchField(changes: readonly ChangeEvent[]): Uint8Array {
  return encodeChangeBatch(changes, 0);
}

/**
 * The batch's field (as encodeChangeBatchField) behind `headroom` bytes
 * left free for the caller: one allocation for a whole envelope.
 */
function encodeChangeBatch(changes: readonly ChangeEvent[], headroom: number): Uint8Array {
  const shared: Uint8Array[] = new Array<Uint8Array>(changes.length);
  let batchSize = 0;
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as ChangeEvent;
    const fields = sharedFields(change);
    shared[i] = fields;
    const changeSize = ownFieldsSize(change) + fields.length;
    batchSize += 1 + varintSize(changeSize) + changeSize;
  }
  const bytes = new Uint8Array(headroom + varintSize(batchSize) + batchSize);
  let at = writeVarint(bytes, headroom, batchSize);
  for (let i = 0; i < changes.length; i++) {
    const change = changes[i] as ChangeEvent;
    const fields = shared[i] as Uint8Array;
    bytes[at++] = TAG_BATCH_CHANGES;
    at = writeVarint(bytes, at, ownFieldsSize(change) + fields.length);
    bytes[at++] = TAG_SUBSCRIPTION_ID;
    at = writeVarint(bytes, at, change.subscriptionId);
    if (change.skipped !== 0) {
      bytes[at++] = TAG_SKIPPED;
      at = writeVarint(bytes, at, change.skipped);
    }
    bytes.set(fields, at);
    at += fields.length;
  }
  return bytes;
}

/**
 * The encoded batch as a field of the response message. protobuf-es writes
 * a message's unknown fields verbatim after its known ones, so a response
 * whose only field is this one serializes to exactly these bytes behind the
 * field's tag — without a message object per change.
 */
export function changeBatchField(
  fieldNumber: number,
  changes: readonly ChangeEvent[],
): UnknownField {
  return {
    no: fieldNumber,
    wireType: WireType.LengthDelimited,
    data: encodeChangeBatchField(changes),
  };
}

/**
 * gRPC, gRPC-Web and Connect's streaming protocol put the same 5 bytes
 * before each message: flags (0: neither compressed nor an end-of-stream
 * frame) and the message's length, big-endian.
 */
const ENVELOPE_PREFIX_BYTES = 5;

/**
 * A response message whose only field (`fieldNumber`, below 16: a
 * one-byte tag) is a batch of these changes, as a whole envelope.
 */
export function changeBatchEnvelope(
  fieldNumber: number,
  changes: readonly ChangeEvent[],
): Uint8Array {
  const only = changes.length === 1 ? (changes[0] as ChangeEvent) : undefined;
  const memo =
    only !== undefined && only.skipped === 0 && only.subscriptionId < 2 ** 32
      ? encodings(only)
      : undefined;
  if (memo === undefined) return encodeChangeBatchEnvelope(fieldNumber, changes);
  // Field numbers are below 16 and these subscription ids below 2^32: one exact number.
  const key = fieldNumber * 2 ** 32 + (only as ChangeEvent).subscriptionId;
  if (memo.envelopeKey !== key || memo.envelope === undefined) {
    memo.envelope = encodeChangeBatchEnvelope(fieldNumber, changes);
    memo.envelopeKey = key;
  }
  // Shared by every stream it is written to: nobody writes into it after this.
  return memo.envelope;
}

function encodeChangeBatchEnvelope(
  fieldNumber: number,
  changes: readonly ChangeEvent[],
): Uint8Array {
  const bytes = encodeChangeBatch(changes, ENVELOPE_PREFIX_BYTES + 1);
  writeEnvelopePrefix(bytes);
  bytes[ENVELOPE_PREFIX_BYTES] = (fieldNumber << 3) | WireType.LengthDelimited;
  return bytes;
}

/** An encoded message as a whole envelope. */
export function envelope(message: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(ENVELOPE_PREFIX_BYTES + message.length);
  bytes.set(message, ENVELOPE_PREFIX_BYTES);
  writeEnvelopePrefix(bytes);
  return bytes;
}

function writeEnvelopePrefix(bytes: Uint8Array): void {
  const length = bytes.length - ENVELOPE_PREFIX_BYTES;
  bytes[0] = 0;
  bytes[1] = length >>> 24;
  bytes[2] = (length >>> 16) & 0xff;
  bytes[3] = (length >>> 8) & 0xff;
  bytes[4] = length & 0xff;
}

// Tags of commy.v1.WatchResponse's `reply` and of commy.v1.Reply.
const TAG_RESPONSE_REPLY = (1 << 3) | WireType.LengthDelimited;
const TAG_REQUEST_ID = (1 << 3) | WireType.LengthDelimited;
const TAG_REPLY_SUBSCRIPTION_ID = (3 << 3) | WireType.Varint;
const TAG_REPLY_VERSION = (4 << 3) | WireType.Varint;

/**
 * A WatchResponse whose reply carries no error, as a whole envelope: the
 * answer to every write on a stream, so encoded by hand like the changes.
 */
export function okReplyEnvelope(
  requestId: string,
  subscriptionId: number,
  version: number,
): Uint8Array {
  const id = encodeName(requestId);
  let replySize = 0;
  if (id.length > 0) replySize += 1 + varintSize(id.length) + id.length;
  if (subscriptionId !== 0) replySize += 1 + varintSize(subscriptionId);
  if (version !== 0) replySize += 1 + varintSize(version);
  const bytes = new Uint8Array(ENVELOPE_PREFIX_BYTES + 1 + varintSize(replySize) + replySize);
  let at = ENVELOPE_PREFIX_BYTES;
  bytes[at++] = TAG_RESPONSE_REPLY;
  at = writeVarint(bytes, at, replySize);
  if (id.length > 0) {
    bytes[at++] = TAG_REQUEST_ID;
    at = writeVarint(bytes, at, id.length);
    bytes.set(id, at);
    at += id.length;
  }
  if (subscriptionId !== 0) {
    bytes[at++] = TAG_REPLY_SUBSCRIPTION_ID;
    at = writeVarint(bytes, at, subscriptionId);
  }
  if (version !== 0) {
    bytes[at++] = TAG_REPLY_VERSION;
    writeVarint(bytes, at, version);
  }
  writeEnvelopePrefix(bytes);
  return bytes;
}

/** Bytes of a varint; versions stay below 2^53, so plain division is exact. */
function varintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

function writeVarint(bytes: Uint8Array, at: number, value: number): number {
  while (value >= 0x80) {
    bytes[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  bytes[at++] = value;
  return at;
}
