import { describe, expect, it } from "vitest";
import { createGroupCommit } from "./group-commit.js";

/** A transaction that records what ran in it, and can be told to fail. */
function fakeTransactions() {
  const committed: string[][] = [];
  const state = { failWith: undefined as Error | undefined };
  let current: string[] | undefined;
  const transaction = (work: () => void): void => {
    const ran: string[] = [];
    current = ran;
    try {
      work();
    } finally {
      current = undefined;
    }
    if (state.failWith !== undefined) throw state.failWith;
    committed.push(ran);
  };
  const write = (name: string) => () => {
    if (current === undefined) throw new Error(`${name} ran outside a transaction`);
    current.push(name);
  };
  return { committed, state, transaction, write };
}

describe("createGroupCommit", () => {
  it("runs the work queued in one turn as one transaction, in order, at setImmediate", async () => {
    const { committed, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);

    const done = [group.enqueue(write("a")), group.enqueue(write("b")), group.enqueue(write("c"))];
    expect(committed).toEqual([]);
    await Promise.all(done);

    expect(committed).toEqual([["a", "b", "c"]]);
  });

  it("resolves a caller only after its transaction committed", async () => {
    const { committed, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);

    const seen = await group.enqueue(write("a")).then(() => committed.length);

    expect(seen).toBe(1);
  });

  it("starts a new transaction for work queued after a commit", async () => {
    const { committed, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);

    await group.enqueue(write("a"));
    await group.enqueue(write("b"));

    expect(committed).toEqual([["a"], ["b"]]);
  });

  it("fails every work of a transaction that fails, with its error", async () => {
    const { committed, state, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);
    state.failWith = new Error("SQLITE_FULL");

    const results = await Promise.allSettled([
      group.enqueue(write("a")),
      group.enqueue(write("b")),
    ]);

    expect(results.map((r) => (r.status === "rejected" ? String(r.reason) : r.status))).toEqual([
      "Error: SQLITE_FULL",
      "Error: SQLITE_FULL",
    ]);
    expect(committed).toEqual([]);
  });

  it("fails the whole group when one work throws", async () => {
    const { committed, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);

    const results = await Promise.allSettled([
      group.enqueue(write("a")),
      group.enqueue(() => {
        throw new Error("no");
      }),
      group.enqueue(write("c")),
    ]);

    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(committed).toEqual([]);
  });

  it("commits what is queued at flush, once", async () => {
    const { committed, transaction, write } = fakeTransactions();
    const group = createGroupCommit(transaction);

    const done = group.enqueue(write("a"));
    group.flush();
    expect(committed).toEqual([["a"]]);
    group.flush();
    await done;
    await new Promise((resolve) => setImmediate(resolve));

    expect(committed).toEqual([["a"]]);
  });
});
