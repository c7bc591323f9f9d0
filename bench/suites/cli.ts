/**
 * How long `commy var get` takes from a shell's point of view: a fresh
 * `node` process running the CLI as the `commy` bin does (src/cli/main.ts
 * compiled with tsc and bundled by scripts/bundle-cli.mjs into
 * node_modules/.cache, as `npm run prepare` builds it)
 * reads one 64-byte variable from a server in another process, prints it
 * and exits. The floor is `node -e 0`: the cost of starting node at all.
 * Both are spawned in turn, so that machine load weighs on both alike.
 */
import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { commyClients } from "../lib/commy-client.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import { sourceNote, sourceState } from "../lib/source-state.js";
import { median } from "../lib/stats.js";
import { type Suite, metricFromRuns } from "../lib/suite.js";

const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Spawns of each kind per run. */
const SPAWNS = 20;
const TARGET_MS = 300;
const TENANT = "bench";
const SERVICE = "cli";
const VARIABLE = "value";
const VALUE = "x".repeat(64);

export const cliSuite: Suite = {
  name: "cli",
  description: "`commy var get` end to end (process start included) vs the `node -e 0` floor",
  async run(context) {
    const dir = mkdtempSync(join(process.env.COMMY_BENCH_DIR ?? tmpdir(), "commy-bench-cli-"));
    const notes: string[] = [];
    const changed = sourceNote(sourceState(["src"]));
    if (changed !== undefined) notes.push(changed);
    let server: CommyServerProcess | undefined;
    let buildDir: string | undefined;
    try {
      context.log("compiling the CLI (tsc) and starting a server");
      const [built, started] = await Promise.all([
        compileCli(),
        CommyServerProcess.start({ baseDir: dir, name: "cli" }),
      ]);
      buildDir = built.outDir;
      server = started;
      await setUp(server);
      const env = { ...process.env, COMMY_URL: server.baseUrl, COMMY_TOKEN: server.adminToken };
      const get = [built.main, "var", "get", `${TENANT}/${SERVICE}/${VARIABLE}`];
      const printed = await spawnOnce(get, env, true);
      if (printed.trim() !== VALUE)
        throw new Error(`commy var get printed ${JSON.stringify(printed)}`);

      const floorRuns: number[] = [];
      const getRuns: number[] = [];
      for (let run = 1; run <= context.runs; run++) {
        const floor: number[] = [];
        const gets: number[] = [];
        for (let i = 0; i < SPAWNS; i++) {
          floor.push(await timeSpawn(["-e", "0"], env));
          gets.push(await timeSpawn(get, env));
        }
        floorRuns.push(median(floor));
        getRuns.push(median(gets));
        context.log(
          `run ${run}/${context.runs}: var get ${median(gets).toFixed(0)} ms, node -e 0 ${median(floor).toFixed(0)} ms`,
        );
      }
      const floorMetric = metricFromRuns(
        { id: "floor", label: "node -e 0 (spawn to exit)", unit: "ms" },
        floorRuns,
      );
      const getMetric = metricFromRuns(
        {
          id: "var-get",
          label: "commy var get, 64 B value (spawn to exit)",
          unit: "ms",
          target: `≤ ${TARGET_MS} ms`,
        },
        getRuns,
      );
      getMetric.pass = getMetric.median <= TARGET_MS;
      getMetric.ratio = { floor: "floor", median: getMetric.median / floorMetric.median };
      const overRuns = getRuns.map((ms, i) => ms - (floorRuns[i] ?? 0));
      const over = metricFromRuns(
        { id: "var-get.over-floor", label: "commy var get minus node -e 0", unit: "ms" },
        overRuns,
      );
      return {
        metrics: [floorMetric, getMetric, over],
        notes,
        config: { spawnsPerRun: SPAWNS, valueBytes: VALUE.length, node: process.version },
      };
    } finally {
      await server?.stop();
      if (buildDir !== undefined) rmSync(buildDir, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/** Compiles src/ and gen/ as JavaScript (no type check) into a fresh folder. */
async function compileCli(): Promise<{ outDir: string; main: string }> {
  const root = join(PACKAGE_ROOT, "node_modules/.cache/commy-bench-cli");
  mkdirSync(root, { recursive: true });
  const outDir = mkdtempSync(join(root, "build-"));
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = [tsc, "-p", "tsconfig.build.json", "--outDir", outDir, "--noCheck"];
  await new Promise<void>((resolve, reject) =>
    execFile(
      process.execPath,
      [...args, "--declaration", "false"],
      { cwd: PACKAGE_ROOT },
      (error) => (error === null ? resolve() : reject(error)),
    ),
  );
  await new Promise<void>((resolve, reject) =>
    execFile(
      process.execPath,
      [join(PACKAGE_ROOT, "scripts/bundle-cli.mjs"), outDir],
      { cwd: PACKAGE_ROOT },
      (error) => (error === null ? resolve() : reject(error)),
    ),
  );
  // What the `commy` bin runs: the bundle `npm run prepare` makes.
  return { outDir, main: join(outDir, "src/cli/commy.js") };
}

async function setUp(server: CommyServerProcess): Promise<void> {
  const clients = commyClients(server.baseUrl, server.adminToken);
  try {
    await clients.commy.createTenant({ tenantId: TENANT });
    await clients.commy.createService({ tenantId: TENANT, serviceName: SERVICE });
    await clients.commy.allocateVariable({
      tenantId: TENANT,
      serviceName: SERVICE,
      variableName: VARIABLE,
      initialData: new TextEncoder().encode(VALUE),
    });
  } finally {
    clients.close();
  }
}

/** Milliseconds from spawning `node args` to its exit; fails on a non-zero exit. */
async function timeSpawn(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = performance.now();
  await spawnOnce(args, env, false);
  return performance.now() - started;
}

function spawnOnce(args: string[], env: NodeJS.ProcessEnv, capture: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      env,
      stdio: ["ignore", capture ? "pipe" : "ignore", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`node ${args.join(" ")} exited with ${code}: ${stderr}`));
    });
  });
}
