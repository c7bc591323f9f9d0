/**
 * The code blocks of the user documentation, each with the directive that
 * says how the docs test exercises it. A block is preceded by an HTML
 * comment `<!-- doc-test: <directive> -->`:
 *
 * - `excerpt <file>`: the block is a verbatim excerpt of that file (under
 *   examples/), which the examples' smoke test runs;
 * - `shell [as <name>] [after <name>]`: a shell block run with bash
 *   against a test server (one per page), with a `commy` on PATH that runs
 *   the built CLI (`# → text` lines give output it must print, `…`
 *   matching anything); `after <name>` runs the page's block named
 *   `as <name>` first, in the same shell (e.g. for a function it defines);
 * - `npm`: npm commands, checked against package.json (they install,
 *   start or test the whole project, which a test cannot run inside itself);
 * - `legacy-trace`: `C {…}` / `S {…}` lines of the legacy WebSocket
 *   protocol, replayed against a test server's bridge;
 * - `diagram`: a plain-text picture (no language, no commands), which
 *   nothing can run.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "./run-example.js";

/** The documentation pages whose blocks are tested. */
export const TESTED_DOCS = [
  "README.md",
  "docs/QUICKSTART.md",
  "docs/USER_GUIDE.md",
  "docs/MIGRATION.md",
  "docs/cli.md",
  "docs/operations.md",
  "docs/performance.md",
  "docs/protocol.md",
  "docs/file-format.md",
];

/** The value of `<word> <value>` among a directive's words, if any. */
export function directiveOption(block: DocBlock, word: string): string | undefined {
  const words = block.directive.split(" ");
  const at = words.indexOf(word, 1);
  return at < 0 ? undefined : words[at + 1];
}

/** One fenced code block of a page. */
export interface DocBlock {
  /** The page, relative to the repository root. */
  page: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's info string, e.g. "ts" or "sh". */
  language: string;
  /** What follows "doc-test:" in the comment before the block; "" when there is none. */
  directive: string;
  /** The lines between the fences. */
  lines: string[];
}

/** The text of a file of the repository. */
export const repositoryFile = (path: string): string =>
  readFileSync(join(PACKAGE_ROOT, path), "utf8");

/** Every fenced code block of `page`, with its directive. */
export function docBlocks(page: string): DocBlock[] {
  const lines = repositoryFile(page).split("\n");
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? "");
    if (open === null) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i] ?? "");
    blocks.push({
      page,
      line: start + 1,
      language: open[1] ?? "",
      directive: directiveBefore(lines, start),
      lines: body,
    });
  }
  return blocks;
}

/** The directive of the comment on the nearest non-empty line above `index`. */
function directiveBefore(lines: readonly string[], index: number): string {
  for (let i = index - 1; i >= 0; i--) {
    const line = (lines[i] ?? "").trim();
    if (line === "") continue;
    return /^<!-- doc-test: (.+?) -->$/.exec(line)?.[1] ?? "";
  }
  return "";
}

/**
 * True when `excerpt` occurs in `source` as consecutive whole lines, the
 * same up to one indentation added to every non-empty line (an excerpt
 * may come from inside a block).
 */
export function containsExcerpt(source: string, excerpt: readonly string[]): boolean {
  const lines = source.split("\n");
  const first = excerpt[0];
  if (first === undefined || first.trim() === "") return false;
  for (let i = 0; i + excerpt.length <= lines.length; i++) {
    const candidate = lines[i] ?? "";
    if (!candidate.endsWith(first)) continue;
    const indent = candidate.slice(0, candidate.length - first.length);
    if (indent.trim() !== "") continue;
    const same = excerpt.every((line, k) =>
      line === "" ? (lines[i + k] ?? "").trim() === "" : lines[i + k] === indent + line,
    );
    if (same) return true;
  }
  return false;
}

/** A pattern for an expected line in which "…" stands for anything. */
export function linePattern(expected: string): RegExp {
  const parts = expected.split("…").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`);
}
