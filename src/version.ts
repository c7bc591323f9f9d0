/**
 * The server's version, from the package's own package.json (one level up
 * from src/ when run from source, two from dist/src/ when built).
 */
import { readFileSync } from "node:fs";

function readVersion(): string {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (manifest.name === "commy" && typeof manifest.version === "string")
        return manifest.version;
    } catch {
      // Not this one: try the next place.
    }
  }
  return "unknown";
}

export const SERVER_VERSION = readVersion();
