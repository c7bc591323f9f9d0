/**
 * The server admin's bootstrap credential: COMMY_ADMIN_TOKEN, or a token
 * generated on first start into <data-dir>/admin-token (mode 0600) and
 * printed once.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_TOKEN_PREFIX, randomSecret } from "./core/credentials.js";

export interface AdminToken {
  token: string;
  /** True when it was generated just now (print it once). */
  generated: boolean;
  /** Where it is kept, when it came from the data directory. */
  path?: string;
}

const MIN_LENGTH = 24;

export function loadAdminToken(dataDir: string, fromEnv: string | undefined): AdminToken {
  if (fromEnv !== undefined && fromEnv !== "") {
    if (fromEnv.length < MIN_LENGTH)
      throw new Error(`COMMY_ADMIN_TOKEN must be at least ${MIN_LENGTH} characters`);
    return { token: fromEnv, generated: false };
  }
  const path = join(dataDir, "admin-token");
  if (existsSync(path)) return { token: readFileSync(path, "utf8").trim(), generated: false, path };
  const token = `${ADMIN_TOKEN_PREFIX}${randomSecret()}`;
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  return { token, generated: true, path };
}
