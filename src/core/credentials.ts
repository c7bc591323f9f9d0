/**
 * Internal: making and checking secrets. API keys and session tokens are
 * random and long, so a SHA-256 of them is stored (fast to check, useless
 * to an attacker who reads the store); passwords are chosen by people, so
 * they are stored with scrypt (slow on purpose: docs/security.md).
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** scrypt cost: 2^14 × 8 × 1 — about 16 MiB and ~50 ms per check on a small VM. */
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const SCRYPT_KEY_LENGTH = 32;

export const SESSION_PREFIX = "cs_";
export const API_KEY_PREFIX = "ck_";
export const ADMIN_TOKEN_PREFIX = "ca_";

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString("base64url");
}

/** A new session token. */
export function newSessionToken(): string {
  return `${SESSION_PREFIX}${randomSecret()}`;
}

/** A new API key: ck_<keyId>_<secret>; keyId is public, the secret is not. */
export function newApiKey(): { keyId: string; secret: string; key: string } {
  const keyId = randomBytes(8).toString("hex");
  const secret = randomSecret();
  return { keyId, secret, key: `${API_KEY_PREFIX}${keyId}_${secret}` };
}

/** Splits an API key into its id and secret, or undefined if it is not shaped like one. */
export function parseApiKey(key: string): { keyId: string; secret: string } | undefined {
  const match = /^ck_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$/.exec(key);
  return match === null ? undefined : { keyId: match[1] as string, secret: match[2] as string };
}

/** Constant-time comparison of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const left = Buffer.from(a, "hex");
  const right = Buffer.from(b, "hex");
  return left.length === right.length && timingSafeEqual(left, right);
}

function scryptAsync(
  password: string,
  salt: Buffer,
  n: number,
  r: number,
  p: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password,
      salt,
      SCRYPT_KEY_LENGTH,
      { N: n, r, p, maxmem: 64 * 1024 * 1024 },
      (error, key) => (error === null ? resolve(key) : reject(error)),
    ),
  );
}

/** scrypt$N$r$p$salt$hash (base64). */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** A hash no password matches, checked for unknown users so that timing tells nothing. */
const DUMMY_HASH = `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${Buffer.alloc(16).toString("base64")}$${Buffer.alloc(32).toString("base64")}`;

export async function verifyPassword(
  password: string,
  stored: string | undefined,
): Promise<boolean> {
  const parts = (stored ?? DUMMY_HASH).split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const expected = Buffer.from(parts[5] as string, "base64");
  const actual = await scryptAsync(password, Buffer.from(parts[4] as string, "base64"), n, r, p);
  return (
    stored !== undefined && expected.length === actual.length && timingSafeEqual(expected, actual)
  );
}
