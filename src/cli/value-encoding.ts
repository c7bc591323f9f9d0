/**
 * A variable's bytes on the command line: given as text, hex, base64 or a
 * file (or standard input), and shown as text, hex or base64 (or written
 * to a file as they are). Malformed input is a UsageError: nothing is sent.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { UsageError } from "./exit-codes.js";

/** How a value is shown. */
export type Encoding = "text" | "hex" | "base64";

export const ENCODINGS: readonly Encoding[] = ["text", "hex", "base64"];

/** Where a new value comes from: the options `var set` and `var create` take. */
export interface ValueSources {
  hex?: string;
  base64?: string;
  /** A path, or "-" for standard input. */
  file?: string;
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The bytes the caller gave: the text argument or exactly one of --hex,
 * --base64, --file; undefined when none was given.
 */
export function valueFrom(text: string | undefined, sources: ValueSources): Uint8Array | undefined {
  const given = [
    text === undefined ? undefined : "a value argument",
    sources.hex === undefined ? undefined : "--hex",
    sources.base64 === undefined ? undefined : "--base64",
    sources.file === undefined ? undefined : "--file",
  ].filter((name) => name !== undefined);
  if (given.length > 1) throw new UsageError(`give only one of ${given.join(", ")}`);
  if (text !== undefined) return new TextEncoder().encode(text);
  if (sources.hex !== undefined) return fromHex(sources.hex);
  if (sources.base64 !== undefined) return fromBase64(sources.base64);
  if (sources.file !== undefined) return readValueFile(sources.file);
  return undefined;
}

function fromHex(hex: string): Uint8Array {
  const digits = hex.startsWith("0x") ? hex.slice(2) : hex;
  if (!HEX.test(digits)) throw new UsageError(`--hex: not an even number of hex digits: ${hex}`);
  return Uint8Array.from(Buffer.from(digits, "hex"));
}

function fromBase64(base64: string): Uint8Array {
  if (!BASE64.test(base64)) throw new UsageError(`--base64: not base64: ${base64}`);
  return Uint8Array.from(Buffer.from(base64, "base64"));
}

function readValueFile(path: string): Uint8Array {
  try {
    // File descriptor 0 is standard input, read to its end.
    return Uint8Array.from(readFileSync(path === "-" ? 0 : path));
  } catch (error) {
    throw new UsageError(`--file: cannot read ${path}: ${(error as Error).message}`);
  }
}

/** A value as shown, with the encoding actually used. */
export interface ShownValue {
  value: string;
  encoding: Encoding;
}

/**
 * The value in `encoding`. Bytes that are not UTF-8 cannot be shown as
 * text: they are shown as `fallback` instead, and the result says so.
 */
export function showValue(data: Uint8Array, encoding: Encoding, fallback: Encoding): ShownValue {
  switch (encoding) {
    case "hex":
      return { value: Buffer.from(data).toString("hex"), encoding };
    case "base64":
      return { value: Buffer.from(data).toString("base64"), encoding };
    case "text":
      try {
        return { value: new TextDecoder("utf-8", { fatal: true }).decode(data), encoding };
      } catch {
        return showValue(data, fallback, fallback);
      }
  }
}

/** Checks an --encoding option's value. */
export function parseEncoding(text: string): Encoding {
  const found = ENCODINGS.find((encoding) => encoding === text);
  if (found === undefined) {
    throw new UsageError(`--encoding must be one of ${ENCODINGS.join(", ")} (got ${text})`);
  }
  return found;
}

/** Writes a value's bytes to a file as they are. */
export function writeValueFile(path: string, data: Uint8Array): void {
  try {
    writeFileSync(path, data);
  } catch (error) {
    throw new UsageError(`--out: cannot write ${path}: ${(error as Error).message}`);
  }
}
