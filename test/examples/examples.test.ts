/**
 * The examples are smoke tests: each one runs as its own process against a
 * real server, as a user would run it, and must exit 0 after printing what
 * it showed. An example that meets anything unexpected exits non-zero.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";
import { type ProcessOutcome, runExample } from "./run-example.js";

let server: TestServer;
let env: Record<string, string>;

beforeAll(async () => {
  server = await startTestServer();
  env = { COMMY_URL: server.server.url, COMMY_TOKEN: testAdminToken() };
});

afterAll(async () => {
  await server?.close();
});

/** Fails with the example's whole output unless it exited 0. */
function expectSuccess(outcome: ProcessOutcome): void {
  expect(outcome.code, `stdout:\n${outcome.stdout}\nstderr:\n${outcome.stderr}`).toBe(0);
}

describe("examples", { timeout: 90_000 }, () => {
  it("basic.ts: explicit create, side-effect-free get, versions, subscribe, delete", async () => {
    const outcome = await runExample("basic.ts", env);
    expectSuccess(outcome);
    const lines = outcome.stdout.split("\n");
    expect(lines).toContainEqual(
      expect.stringMatching(/^created service config \([0-9a-f-]{36}\)$/),
    );
    for (const line of [
      "  refused: create config again: ALREADY_EXISTS (service config in tenant",
      "  refused: get a service that was never created: NOT_FOUND",
      "services: config",
      "allocated greeting at version 1",
      'read greeting: "hi, there" at version 2',
      "  refused: write expecting version 1: VERSION_CONFLICT (greeting is at version 2, not 1)",
      "compare-and-set at version 2 wrote version 3",
      "three concurrent increments: counter is 3",
      'change: snapshot "hello again" at version 3',
      'change: update "goodbye" at version 4',
      "  refused: read a deallocated variable: NOT_FOUND",
      "  refused: delete the service again: NOT_FOUND",
      "basic example: ok",
    ]) {
      expect(
        lines.some((l) => l.startsWith(line)),
        line,
      ).toBe(true);
    }
  });

  it("permissions.ts: what an admin, a reader and a creator may do, and the errors", async () => {
    const outcome = await runExample("permissions.ts", env);
    expectSuccess(outcome);
    const refusals = [...outcome.stdout.matchAll(/^ {2}refused: (.+): ([A-Z_]+) \(/gm)].map(
      ([, what, code]) => `${what} → ${code}`,
    );
    expect(refusals).toEqual([
      "read secrets/db_password (outside its prefix) → PERMISSION_DENIED",
      "write config/max_connections → PERMISSION_DENIED",
      "create a service → PERMISSION_DENIED",
      "read config/missing (permitted, but absent) → NOT_FOUND",
      "read in a tenant it has no grant in (whether it exists or not) → PERMISSION_DENIED",
      "read scratch/note (writing does not imply reading) → PERMISSION_DENIED",
      "delete service scratch → PERMISSION_DENIED",
      "create service config (permitted, but it exists) → ALREADY_EXISTS",
      "read with no token → UNAUTHORIZED",
      "read with a made-up key → UNAUTHORIZED",
    ]);
    expect(outcome.stdout).toMatch(/: service:read:config, variable:read:config$/m);
    expect(outcome.stdout).toContain("  allowed: read secrets/db_password\n");
    expect(outcome.stdout).toMatch(/^permissions example: ok$/m);
  });

  it("local.ts: a local reader process maps the file, sees the remote write, answers in place", async () => {
    const outcome = await runExample("local.ts", env);
    expectSuccess(outcome);
    const stdout = outcome.stdout;
    expect(stdout).toMatch(/^ {2}reader: mapped \/.+\.commy$/m);
    expect(stdout).toContain('  reader: local read "20.5" at version 1\n');
    expect(stdout).toMatch(/^ {2}reader: 100000 local reads, [\d.]+ µs each$/m);
    expect(stdout).toContain('writer: wrote temperature "21.75" over the API, version 2\n');
    expect(stdout).toContain('  reader: change to version 2; local read "21.75"\n');
    expect(stdout).toContain('writer: ack changed to "seen version 2"\n');
    expect(stdout).toMatch(/^local example: ok$/m);
  });

  it("error-detail.ts: the raw client finds VERSION_CONFLICT in the ErrorDetail", async () => {
    const outcome = await runExample("error-detail.ts", env);
    expect(outcome.code, outcome.stderr).toBe(0);
    expect(outcome.stdout).toContain("refused: 9 with ErrorDetail VERSION_CONFLICT");
  });

  it("an example without COMMY_URL and COMMY_TOKEN says what to set and exits 2", async () => {
    const outcome = await runExample("basic.ts", { COMMY_URL: "", COMMY_TOKEN: "" });
    expect(outcome.code).toBe(2);
    expect(outcome.stderr).toContain("Set COMMY_URL");
    expect(outcome.stdout).toBe("");
  });
});
