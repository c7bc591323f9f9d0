import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OwnedServiceFile, type VariableChange } from "../shm/index.js";
import {
  ChangeFeed,
  type ChangeListener,
  type ValueReader,
  latestPerVariable,
} from "./change-feed.js";

const write = (name: string, version: number): VariableChange => ({ name, version, kind: "write" });
const remove = (name: string, version: number): VariableChange => ({
  name,
  version,
  kind: "delete",
});

describe("latestPerVariable", () => {
  it("keeps the last write of each variable, in the order of those last writes", () => {
    const changes = [write("a", 1), write("b", 1), write("a", 2), write("c", 1), write("b", 2)];
    expect(latestPerVariable(changes)).toEqual([write("a", 2), write("c", 1), write("b", 2)]);
  });

  it("keeps every delete and the last write before it", () => {
    const changes = [
      write("a", 1),
      write("a", 2),
      remove("a", 2),
      write("a", 1),
      write("a", 2),
      remove("a", 2),
    ];
    expect(latestPerVariable(changes)).toEqual([
      write("a", 2),
      remove("a", 2),
      write("a", 2),
      remove("a", 2),
    ]);
  });

  it("hands back the same list when nothing is superseded", () => {
    const changes = [write("a", 1), write("b", 1), remove("a", 1)];
    expect(latestPerVariable(changes)).toBe(changes);
    expect(latestPerVariable([])).toEqual([]);
  });
});

describe("ChangeFeed", () => {
  let dir: string | undefined;
  let file: OwnedServiceFile | undefined;
  afterEach(() => {
    file?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** A feed on a fresh file, with one listener that keeps each dispatch's reader. */
  function feedOnFile() {
    dir = mkdtempSync(join(tmpdir(), "commy-feed-spec-"));
    const owned = OwnedServiceFile.create(join(dir, "s.commy"), { serviceId: "s" });
    file = owned;
    const feed = new ChangeFeed();
    const dispatches: { changes: readonly VariableChange[]; read: ValueReader }[] = [];
    const listener: ChangeListener = {
      onChanges: (_, changes, read) => dispatches.push({ changes, read }),
      onServiceDeleted: () => undefined,
    };
    feed.listen("s", owned, listener);
    return { feed, owned, dispatches };
  }

  it("shares one read among listeners until a change of that variable is announced", () => {
    const { feed, owned } = feedOnFile();
    owned.allocate("a", Buffer.from("a1"));
    owned.allocate("b", Buffer.from("b1"));
    feed.publish("s");
    const a = feed.read("s", owned, "a");
    const b = feed.read("s", owned, "b");
    expect(feed.read("s", owned, "a")).toBe(a);
    owned.write("a", Buffer.from("a2"));
    feed.publish("s");
    // b did not change: the same read serves; a did: read anew.
    expect(feed.read("s", owned, "b")).toBe(b);
    const a2 = feed.read("s", owned, "a");
    expect(a2).not.toBe(a);
    expect(Buffer.from(a2?.data ?? []).toString()).toBe("a2");
  });

  it("reads a variable made anew after a read found it gone", () => {
    const { feed, owned, dispatches } = feedOnFile();
    owned.allocate("a", Buffer.from("old"));
    feed.publish("s");
    owned.deallocate("a");
    feed.publish("s");
    expect(feed.read("s", owned, "a")).toBeUndefined();
    owned.allocate("a", Buffer.from("new"));
    feed.publish("s");
    expect(dispatches.at(-1)?.changes.map((c) => c.kind)).toEqual(["write"]);
    expect(Buffer.from(feed.read("s", owned, "a")?.data ?? []).toString()).toBe("new");
  });
});
