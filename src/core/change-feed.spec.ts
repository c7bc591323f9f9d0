import { describe, expect, it } from "vitest";
import type { VariableChange } from "../shm/index.js";
import { latestPerVariable } from "./change-feed.js";

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
