/**
 * The benchmark entry: `npm run bench [-- <suite>[:<part>,...]... ] [--runs N] [--list]`.
 *
 * Runs every suite of bench/suites/index.ts (or those named, or only some
 * parts of one, e.g. `shm:latency`, for a quick look), prints each
 * one's table and writes bench/results/<suite>.json (everything measured,
 * with the machine) and bench/results/<suite>.md (the table as Markdown,
 * for docs/performance.md). The exit code is 0 even when targets are
 * missed: the table says so; a crash is the only failure.
 */
import { fileURLToPath } from "node:url";
import { type Load, sampleLoad, startLoadMeter } from "./lib/load.js";
import { machineInfo } from "./lib/machine.js";
import { markdownTable, textTable, writeJson, writeText } from "./lib/report.js";
import type { SuiteResult } from "./lib/suite.js";
import { suites } from "./suites/index.js";

const RESULTS = fileURLToPath(new URL("./results/", import.meta.url));
const MIN_RUNS = 5;
/** Above this share of the CPUs used by other processes, the table carries a warning. */
const BUSY_SHARE = 0.05;

interface Options {
  filters: string[];
  runs: number;
  list: boolean;
}

function parseArguments(args: readonly string[]): Options {
  const options: Options = { filters: [], runs: MIN_RUNS, list: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--list") options.list = true;
    else if (arg === "--runs") {
      options.runs = Number(args[++i]);
      if (!Number.isInteger(options.runs) || options.runs < 1) {
        throw new Error("--runs takes a whole number ≥ 1");
      }
    } else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}`);
    else options.filters.push(arg);
  }
  return options;
}

async function main(): Promise<void> {
  const options = parseArguments(process.argv.slice(2));
  if (options.list) {
    for (const suite of suites) {
      const parts = suite.parts === undefined ? "" : ` (parts: ${suite.parts.join(", ")})`;
      console.log(`${suite.name.padEnd(12)} ${suite.description}${parts}`);
    }
    return;
  }
  const wanted = options.filters.map((filter) => {
    const [name = "", parts = ""] = filter.split(":");
    return { name, parts: parts === "" ? [] : parts.split(",") };
  });
  const selected =
    wanted.length === 0 ? suites : suites.filter((s) => wanted.some((w) => w.name === s.name));
  if (selected.length === 0) {
    throw new Error(
      `no suite matches ${options.filters.join(", ")}; there are: ${suites.map((s) => s.name).join(", ")}`,
    );
  }
  if (options.runs < MIN_RUNS) {
    console.error(`note: ${options.runs} runs; published figures use at least ${MIN_RUNS}`);
  }
  for (const suite of selected) {
    const machine = machineInfo();
    const before = await sampleLoad(1_000);
    if (before !== undefined && before.others > BUSY_SHARE) {
      console.error(
        `[${suite.name}] other processes use ${percent(before.others)} of the CPUs: expect noise`,
      );
    }
    const stopMeter = startLoadMeter();
    const startedAt = new Date();
    const started = performance.now();
    const parts = wanted.find((w) => w.name === suite.name)?.parts ?? [];
    const unknown = parts.filter((part) => !(suite.parts ?? []).includes(part));
    if (unknown.length > 0) throw new Error(`${suite.name} has no part ${unknown.join(", ")}`);
    const outcome = await suite.run({
      runs: options.runs,
      machine,
      parts,
      log: (message) => console.error(`[${suite.name}] ${message}`),
    });
    const during = stopMeter();
    const notes = [...outcome.notes];
    if (during !== undefined && during.others > BUSY_SHARE) {
      notes.unshift(
        `other processes used ${percent(during.others)} of the CPUs during this run ` +
          `(the bench itself: ${percent(during.bench)}): the figures are disturbed; ` +
          "rerun on a quiet machine",
      );
    }
    const result: SuiteResult = {
      suite: parts.length === 0 ? suite.name : `${suite.name}:${parts.join(",")}`,
      description: suite.description,
      startedAt: startedAt.toISOString(),
      durationMs: Math.round(performance.now() - started),
      runs: options.runs,
      ...outcome,
      notes,
      machine: { ...machine, ...outcome.machine },
      load: loadRecord(before, during),
    };
    console.log(`\n${textTable(result)}\n`);
    // A partial run does not overwrite the full results.
    const file = parts.length === 0 ? suite.name : `${suite.name}-${parts.join("-")}`;
    writeJson(`${RESULTS}${file}.json`, result);
    writeText(`${RESULTS}${file}.md`, markdownTable(result));
    console.error(`[${suite.name}] wrote bench/results/${file}.json and .md`);
  }
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

function loadRecord(before: Load | undefined, during: Load | undefined): SuiteResult["load"] {
  const load: SuiteResult["load"] = {};
  if (before !== undefined) load.before = before;
  if (during !== undefined) load.during = during;
  return load;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
});
