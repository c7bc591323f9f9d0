/**
 * The user documentation cannot drift from the code: every code block of
 * README.md, QUICKSTART.md, USER_GUIDE.md, MIGRATION.md and cli.md is
 * exercised here
 * (doc-blocks.ts says how), the configuration table is checked against
 * the server's options, the operations table against the client, and the
 * README links the pages.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as clientLibrary from "../../src/client/index.js";
import { DEFAULT_CONFIG, SERVER_OPTIONS } from "../../src/config.js";
import { type BuiltCli, buildCli } from "../cli/cli-fixtures.js";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { LegacyWs } from "../helpers/legacy-ws.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import {
  type DocBlock,
  TESTED_DOCS,
  containsExcerpt,
  directiveOption,
  docBlocks,
  linePattern,
  repositoryFile,
} from "./doc-blocks.js";
import { runProcess } from "./run-example.js";

const blocks = TESTED_DOCS.flatMap(docBlocks);
const where = (block: DocBlock): string => `${block.page}:${block.line}`;
const withDirective = (kind: string): DocBlock[] =>
  blocks.filter((block) => block.directive.split(" ")[0] === kind);

/** The address and token the docs use, replaced by the test server's. */
const DOCUMENTED_URL = "http://127.0.0.1:8080";
const DOCUMENTED_TOKEN_FILE = "commy-data/admin-token";

let server: TestServer;
let tokenDir: string;
let cli: BuiltCli | undefined;
/** Each page's shell blocks run against a server of their own (pages reuse names). */
const pageServers = new Map<string, Promise<TestServer>>();

const serverFor = (page: string): Promise<TestServer> => {
  let started = pageServers.get(page);
  if (started === undefined) {
    started = startTestServer();
    pageServers.set(page, started);
  }
  return started;
};

beforeAll(async () => {
  [server, cli] = await Promise.all([startTestServer(), buildCli()]);
  tokenDir = mkdtempSync(join(tmpdir(), "commy-docs-"));
  writeFileSync(join(tokenDir, "admin-token"), testAdminToken(), { mode: 0o600 });
  // The shell blocks' `commy` runs the CLI just built.
  mkdirSync(join(tokenDir, "bin"));
  writeFileSync(
    join(tokenDir, "bin/commy"),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cli.main)} "$@"\n`,
    { mode: 0o755 },
  );
}, 240_000);

afterAll(async () => {
  await server?.close();
  for (const started of pageServers.values()) await (await started).close();
  cli?.remove();
  if (tokenDir !== undefined) rmSync(tokenDir, { recursive: true, force: true });
});

describe("the docs' code blocks", () => {
  it("every page has blocks, and each says how it is tested", () => {
    for (const page of TESTED_DOCS) {
      expect(
        blocks.some((block) => block.page === page),
        page,
      ).toBe(true);
    }
    const untested = blocks.filter(
      (block) =>
        !["excerpt", "shell", "npm", "legacy-trace", "diagram"].includes(
          block.directive.split(" ")[0] ?? "",
        ),
    );
    expect(untested.map(where)).toEqual([]);
  });

  it.each(withDirective("excerpt").map((block) => [where(block), block] as const))(
    "%s is a verbatim excerpt of its example",
    (_, block) => {
      const file = block.directive.split(" ")[1] ?? "";
      expect(file, "excerpts come from examples/").toMatch(/^examples\/[\w.-]+\.ts$/);
      expect(["ts", "typescript"]).toContain(block.language);
      expect(containsExcerpt(repositoryFile(file), block.lines), `not found in ${file}`).toBe(true);
    },
  );

  it.each(withDirective("npm").map((block) => [where(block), block] as const))(
    "%s names npm commands that exist",
    (_, block) => {
      const scripts = (JSON.parse(repositoryFile("package.json")) as { scripts: object }).scripts;
      const commands = block.lines
        .map((line) => line.replace(/#.*$/, "").trim())
        .filter((line) => line !== "")
        .flatMap((line) => line.split("&&").map((part) => part.trim()));
      expect(commands.length).toBeGreaterThan(0);
      for (const command of commands) {
        const [npm, verb, script] = command.split(/\s+/);
        expect(npm, command).toBe("npm");
        if (verb === "ci") continue;
        const name = verb === "run" ? script : verb;
        expect(Object.keys(scripts), command).toContain(name);
      }
      // `npm start` is the server: the CLI's serve command.
      expect((scripts as Record<string, string>).start).toMatch(/cli\/main\.js serve/);
    },
  );

  it.each(withDirective("shell").map((block) => [where(block), block] as const))(
    "%s runs against a server and prints what it shows",

    async (_, block) => {
      const pageServer = await serverFor(block.page);
      const script = shellScript(block)
        .replaceAll(DOCUMENTED_URL, pageServer.server.url)
        .replaceAll(DOCUMENTED_TOKEN_FILE, join(tokenDir, "admin-token"));
      const outcome = await runProcess("bash", ["-e", "-o", "pipefail", "-c", script], {
        env: { PATH: `${join(tokenDir, "bin")}:${process.env.PATH ?? ""}` },
        timeoutMs: 100_000,
      });
      const report = `stdout:\n${outcome.stdout}\nstderr:\n${outcome.stderr}`;
      expect(outcome.code, report).toBe(0);
      // The expected lines appear in this order among the lines printed.
      const printed = outcome.stdout.split("\n");
      let from = 0;
      for (const expected of block.lines.filter((line) => line.startsWith("# → "))) {
        const pattern = linePattern(expected.slice("# → ".length));
        const found = printed.findIndex((line, i) => i >= from && pattern.test(line));
        expect(found, `${expected}\n${report}`).toBeGreaterThanOrEqual(0);
        from = found + 1;
      }
    },
    120_000,
  );

  it.each(withDirective("diagram").map((block) => [where(block), block] as const))(
    "%s is a plain-text picture, not a command",
    (_, block) => {
      expect(block.language).toBe("");
      expect(block.lines.filter((line) => /^\s*(\$|npm |npx |commy |curl )/.test(line))).toEqual(
        [],
      );
    },
  );

  it.each(withDirective("legacy-trace").map((block) => [where(block), block] as const))(
    "%s is what the legacy WebSocket bridge answers",
    async (_, block) => {
      await replayLegacyTrace(block);
    },
  );
});

/** The script of a shell block: the block it runs `after` (recursively) first. */
function shellScript(block: DocBlock): string {
  const after = directiveOption(block, "after");
  if (after === undefined) return block.lines.join("\n");
  const first = blocks.find(
    (other) =>
      other.page === block.page &&
      other.directive.split(" ")[0] === "shell" &&
      directiveOption(other, "as") === after,
  );
  expect(first, `${where(block)} runs after a block named ${after}`).toBeDefined();
  return `${first === undefined ? "" : shellScript(first)}\n${block.lines.join("\n")}`;
}

/**
 * Sends each `C` line of a trace and takes as many frames as there are `S`
 * lines up to the next `C`, matching them in any order (a push and a reply
 * may come either way round). In `S` lines "…" matches any string and
 * "<name>" captures a value that later lines must repeat; in `C` lines
 * "<admin token>" and captured names are filled in.
 */
async function replayLegacyTrace(block: DocBlock): Promise<void> {
  const captured = new Map<string, unknown>([["<admin token>", testAdminToken()]]);
  const steps = block.lines.filter((line) => /^[CS] /.test(line));
  const ws = await LegacyWs.open(server.server.url.replace(/^http/, "ws") + "/");
  try {
    for (let i = 0; i < steps.length;) {
      const sent = steps[i] ?? "";
      expect(sent.startsWith("C "), `the trace starts each exchange with C: ${sent}`).toBe(true);
      ws.sendText(fill(sent.slice(2), captured));
      const expected: unknown[] = [];
      for (i++; i < steps.length && steps[i]?.startsWith("S ") === true; i++) {
        expected.push(JSON.parse(steps[i]?.slice(2) ?? ""));
      }
      for (let n = expected.length; n > 0; n--) {
        const frame = await ws.next(`a reply to ${sent}`);
        const received = { type: frame.type, data: frame.data };
        const match = expected.findIndex((e) => matches(e, received, new Map(captured)));
        expect(match, `${JSON.stringify(received)} answers ${sent}`).toBeGreaterThanOrEqual(0);
        matches(expected[match], received, captured);
        expected.splice(match, 1);
      }
    }
  } finally {
    await ws.close();
  }
}

/** `text` with every captured "<name>" replaced by its value. */
function fill(text: string, captured: ReadonlyMap<string, unknown>): string {
  return text.replace(/"(<[^">]+>)"/g, (whole, name: string) =>
    captured.has(name) ? JSON.stringify(captured.get(name)) : whole,
  );
}

/** True when `actual` has the shape and values of `expected` (recording captures). */
function matches(expected: unknown, actual: unknown, captured: Map<string, unknown>): boolean {
  if (expected === "…") return typeof actual === "string";
  if (typeof expected === "string" && /^<[^>]+>$/.test(expected)) {
    if (!captured.has(expected)) captured.set(expected, actual);
    return captured.get(expected) === actual;
  }
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((e, i) => matches(e, actual[i], captured))
    );
  }
  if (typeof expected === "object" && expected !== null) {
    if (typeof actual !== "object" || actual === null || Array.isArray(actual)) return false;
    const want = Object.keys(expected).sort();
    const got = Object.keys(actual).sort();
    return (
      want.join() === got.join() &&
      want.every((key) =>
        matches(
          (expected as Record<string, unknown>)[key],
          (actual as Record<string, unknown>)[key],
          captured,
        ),
      )
    );
  }
  return expected === actual;
}

describe("USER_GUIDE.md's tables", () => {
  const guide = repositoryFile("docs/USER_GUIDE.md");

  it("the configuration table lists every server option with its variable and default", () => {
    const rows = new Map<string, string[]>();
    for (const line of guide.split("\n")) {
      const cells = line.split("|").map((cell) => cell.trim());
      const flag = /^`--([\w-]+)`$/.exec(cells[1] ?? "")?.[1];
      if (flag !== undefined) rows.set(flag, cells.slice(2));
    }
    expect([...rows.keys()].sort()).toEqual(SERVER_OPTIONS.map((o) => o.flag).sort());
    for (const option of SERVER_OPTIONS) {
      const [env, defaultValue] = rows.get(option.flag) ?? [];
      expect(env, option.flag).toBe(`\`${option.env}\``);
      const value = DEFAULT_CONFIG[option.key as keyof typeof DEFAULT_CONFIG];
      const shown = value === "" ? "none" : `\`${String(value)}\``;
      expect(defaultValue?.startsWith(shown), `${option.flag} defaults to ${shown}`).toBe(true);
    }
  });

  it("the operations table names methods the client has", () => {
    const named = [...guide.matchAll(/`client\.(\w+)\(/g)].map(([, name]) => name ?? "");
    expect(named.length).toBeGreaterThan(10);
    const client = clientLibrary.createCommyClient({ baseUrl: server.server.url });
    try {
      const methods = client as unknown as Record<string, unknown>;
      for (const name of named) expect(typeof methods[name], `client.${name}`).toBe("function");
    } finally {
      client.close();
    }
  });

  it("the error guards it names are exported by the client", () => {
    const guards = [...guide.matchAll(/`(is[A-Z]\w+)[`(]/g)].map(([, name]) => name ?? "");
    expect(guards.length).toBeGreaterThan(10);
    const exported = clientLibrary as unknown as Record<string, unknown>;
    for (const name of guards) expect(typeof exported[name], name).toBe("function");
  });
});

describe("README.md", () => {
  it("links the user documentation", () => {
    const readme = repositoryFile("README.md");
    for (const page of TESTED_DOCS.filter((page) => page !== "README.md")) {
      expect(readme).toContain(`](${page})`);
    }
  });
});
