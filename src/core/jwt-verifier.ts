/**
 * Internal: verifies a JWT against a tenant's settings with jose: the
 * signature (HS secret, PEM public key or a local JWKS file — never a
 * network fetch), issuer, audience, expiry; maps its claims to grants.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { createLocalJWKSet, jwtVerify, type JWTPayload, type JWTVerifyOptions } from "jose";
import { GRANT_PERMISSIONS, type Grant, type GrantPermission } from "./caller.js";

/** How a tenant verifies JWTs (stored as JSON). */
export interface JwtSettings {
  hsSecret?: string;
  publicKeyPem?: string;
  jwksFile?: string;
  issuer?: string;
  audience?: string;
  /** Claim with the granted permissions (default "permissions"). */
  permissionsClaim?: string;
}

export interface VerifiedJwt {
  subject: string;
  expiresAt: number;
  grants: Grant[];
}

const HS_ALGORITHMS = ["HS256", "HS384", "HS512"];
const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
];

/** Checks settings before they are stored; returns what is wrong, if anything. */
export function describeInvalidJwtSettings(settings: JwtSettings): string | undefined {
  const sources = [settings.hsSecret, settings.publicKeyPem, settings.jwksFile].filter(
    (s) => s !== undefined && s !== "",
  );
  if (sources.length !== 1)
    return "exactly one of hs_secret, public_key_pem and jwks_file must be set";
  if (
    settings.hsSecret !== undefined &&
    settings.hsSecret !== "" &&
    settings.hsSecret.length < 32
  ) {
    return "hs_secret must be at least 32 characters";
  }
  try {
    if (settings.publicKeyPem) createPublicKey(settings.publicKeyPem);
    if (settings.jwksFile) createLocalJWKSet(JSON.parse(readFileSync(settings.jwksFile, "utf8")));
  } catch (error) {
    return `the key cannot be used: ${(error as Error).message}`;
  }
  return undefined;
}

/** Verifies `token`; undefined when it is invalid in any way. */
export async function verifyJwt(
  token: string,
  settings: JwtSettings,
  tenantId: string,
): Promise<VerifiedJwt | undefined> {
  const options: JWTVerifyOptions = { requiredClaims: ["exp", "sub"] };
  if (settings.issuer) options.issuer = settings.issuer;
  if (settings.audience) options.audience = settings.audience;
  let payload: JWTPayload;
  try {
    if (settings.hsSecret) {
      options.algorithms = HS_ALGORITHMS;
      ({ payload } = await jwtVerify(token, new TextEncoder().encode(settings.hsSecret), options));
    } else if (settings.publicKeyPem) {
      options.algorithms = ASYMMETRIC_ALGORITHMS;
      ({ payload } = await jwtVerify(token, createPublicKey(settings.publicKeyPem), options));
    } else if (settings.jwksFile) {
      options.algorithms = ASYMMETRIC_ALGORITHMS;
      const keys = createLocalJWKSet(JSON.parse(readFileSync(settings.jwksFile, "utf8")));
      ({ payload } = await jwtVerify(token, keys, options));
    } else {
      return undefined;
    }
  } catch {
    return undefined;
  }
  if (typeof payload.sub !== "string" || payload.sub === "" || typeof payload.exp !== "number")
    return undefined;
  const claimed = payload[settings.permissionsClaim || "permissions"];
  return {
    subject: payload.sub,
    expiresAt: payload.exp * 1000,
    grants: parseGrantStrings(Array.isArray(claimed) ? claimed : [], tenantId),
  };
}

/** "variable:read" or "variable:read:<service prefix>" → grants; unknown strings are ignored. */
export function parseGrantStrings(values: readonly unknown[], tenantId: string): Grant[] {
  const grants: Grant[] = [];
  for (const value of values) {
    if (typeof value !== "string") continue;
    const permission = GRANT_PERMISSIONS.find((p) => value === p || value.startsWith(`${p}:`));
    if (permission === undefined) continue;
    grants.push({
      tenantId,
      permission: permission as GrantPermission,
      servicePrefix: value.slice(permission.length + 1),
    });
  }
  return grants;
}
