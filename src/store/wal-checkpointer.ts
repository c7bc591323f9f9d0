/**
 * Internal: SQLite's WAL checkpoints, off the event loop.
 *
 * In WAL mode every commit appends to the -wal file; a checkpoint copies
 * those pages into the database file and, with synchronous=NORMAL, syncs
 * both to disk. By default SQLite runs one inside the commit that pushes
 * the WAL past 1,000 pages — a few hundred small commits here — so every
 * few hundred calls one call stalled the whole server for two fsyncs (1–50
 * ms on a shared disk). A second connection on a worker thread now does
 * that work every CHECKPOINT_INTERVAL_MS; the server's own connection
 * checkpoints only past BACKSTOP_PAGES, which it reaches under sustained
 * writes (a PASSIVE checkpoint never catches up with a busy writer, so the
 * WAL is restarted there) or should the worker be gone.
 *
 * Durability is unchanged: what a commit makes durable (the WAL append)
 * stays on the committing thread; a checkpoint only moves committed pages.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** How often the worker checkpoints. */
const CHECKPOINT_INTERVAL_MS = 100;
/** WAL pages past which the server's connection checkpoints itself (32 MiB of 4 KiB pages). */
export const BACKSTOP_PAGES = 8192;

/**
 * Plain JavaScript, so that the worker needs no loader whether the server
 * runs compiled or from TypeScript sources. PASSIVE never waits for, and
 * never blocks, the server's readers and writer; a failed attempt (busy)
 * is retried at the next tick.
 */
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
setInterval(() => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {}
}, workerData.intervalMs);
`;

/** Stops the worker (its connection closes with it). */
export interface WalCheckpointer {
  stop(): void;
}

/** Starts checkpointing the WAL of the database at `path` on a worker thread. */
export function startWalCheckpointer(path: string): WalCheckpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver, path, intervalMs: CHECKPOINT_INTERVAL_MS },
  });
  // A lost worker costs speed, not data: the backstop takes over.
  worker.on("error", () => undefined);
  // Never the reason the process stays alive.
  worker.unref();
  return { stop: () => void worker.terminate() };
}
