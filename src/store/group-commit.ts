/**
 * Internal: group commit. Each commit is a WAL append (60–150 µs on a
 * shared disk, docs/performance.md "Identity"), most of it fixed cost, so
 * writes queued in the same event-loop turn share one transaction, run at
 * `setImmediate`. A caller learns that its work committed only once it has:
 * durability is that of one transaction per call. The price is all or
 * nothing: when the shared transaction fails, every work in it fails.
 */

/** Work queued for the next shared transaction. */
export interface GroupCommit {
  /**
   * Queues `work` (synchronous store writes) for the next shared
   * transaction; resolves once that transaction committed, rejects with its
   * error when it did not (then nothing of any work in it was written).
   */
  enqueue(work: () => void): Promise<void>;
  /**
   * Commits what is queued now, before the next `setImmediate`: for a write
   * that must come after it (deleting a principal's sessions must see those
   * of logins queued before it). Never throws: a failure rejects the queued.
   */
  flush(): void;
}

interface Queued {
  work: () => void;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** A group commit over `transaction`, which runs its argument as one transaction. */
export function createGroupCommit(transaction: (work: () => void) => void): GroupCommit {
  let queued: Queued[] = [];
  let scheduled: NodeJS.Immediate | undefined;

  const flush = (): void => {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    if (queued.length === 0) return;
    const batch = queued;
    queued = [];
    try {
      transaction(() => {
        for (const item of batch) item.work();
      });
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    for (const item of batch) item.resolve();
  };

  return {
    enqueue: (work) =>
      new Promise<void>((resolve, reject) => {
        queued.push({ work, resolve, reject });
        scheduled ??= setImmediate(flush);
      }),
    flush,
  };
}
