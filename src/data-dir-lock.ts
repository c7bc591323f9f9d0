/**
 * One server per data directory: two owners of the same service files
 * would corrupt them. The lock is a file holding the owner's pid; a lock
 * left by a dead process is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { isProcessAlive } from "./shm/process-liveness.js";

/** Locks this process holds: a second server in the same process is refused too. */
const held = new Set<string>();

export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
}

/** Takes the data directory's lock; returns a function that releases it. */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, "server.lock");
  if (held.has(path))
    throw new DataDirLockedError(`${dataDir} is in use by another Commy server in this process`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      held.add(path);
      return () => {
        held.delete(path);
        rmSync(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number.parseInt(readFileSync(path, "utf8"), 10);
      if (Number.isInteger(holder) && isProcessAlive(holder) && holder !== process.pid) {
        throw new DataDirLockedError(
          `${dataDir} is in use by another Commy server (pid ${holder})`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new DataDirLockedError(`cannot take the lock of ${dataDir}`);
}
