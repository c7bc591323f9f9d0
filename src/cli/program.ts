/**
 * The `commy` command tree: `commy serve` runs a server; every other
 * command is a client of one (src/client), one module per command group
 * under commands/. Exit codes follow the ErrorCode (exit-codes.ts).
 */
import { Command, CommanderError } from "commander";
import { isCommyError } from "../core/commy-error.js";
import { addExamples } from "./examples.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeHelp, exitCodeOf } from "./exit-codes.js";

/** Adds one module's commands to the program. */
type Register = (program: Command) => void;

/**
 * The command modules, in the order the top-level help lists them, each
 * with the top-level commands it adds. A module is imported only when its
 * commands are needed: `commy var get` loads commands/var.ts and no other.
 */
const MODULES: readonly { commands: readonly string[]; load: () => Promise<Register> }[] = [
  {
    commands: ["serve"],
    load: async () => (await import("./commands/serve.js")).registerServeCommand,
  },
  {
    commands: ["tenant"],
    load: async () => (await import("./commands/tenant.js")).registerTenantCommands,
  },
  {
    commands: ["service"],
    load: async () => (await import("./commands/service.js")).registerServiceCommands,
  },
  { commands: ["var"], load: async () => (await import("./commands/var.js")).registerVarCommands },
  {
    commands: ["principal", "whoami"],
    load: async () => (await import("./commands/principal.js")).registerPrincipalCommands,
  },
  { commands: ["key"], load: async () => (await import("./commands/key.js")).registerKeyCommands },
  {
    commands: ["grant", "revoke", "grants"],
    load: async () => (await import("./commands/grant.js")).registerGrantCommands,
  },
  {
    commands: ["audit"],
    load: async () => (await import("./commands/audit.js")).registerAuditCommand,
  },
];

/** True when `name` is a client command (one that calls a server). */
export const isClientCommand = (name: string | undefined): boolean =>
  name !== "serve" && MODULES.some((module) => module.commands.includes(name ?? ""));

/**
 * The command tree: with `only`, just the module that adds that top-level
 * command (enough to run it or show its help); else every command.
 */
export async function createProgram(only?: string): Promise<Command> {
  const program = new Command("commy")
    .description("Commy: a multi-tenant coordination server for small, hot, shared values")
    // Settings made before .command() are inherited by every subcommand.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)");
  const wanted = MODULES.filter((module) => module.commands.includes(only ?? ""));
  const modules = wanted.length > 0 ? wanted : MODULES;
  const registers = await Promise.all(modules.map((module) => module.load()));
  for (const register of registers) register(program);
  addExamples(
    program,
    "commy serve --data-dir ./commy-data",
    "export COMMY_URL=http://127.0.0.1:8080 COMMY_TOKEN=…",
    "commy var get acme/config/mode",
  );
  program.addHelpText(
    "after",
    `\nConnection (client commands): --url/--token > COMMY_URL/COMMY_TOKEN > the CLI config\nfile (--config, COMMY_CLI_CONFIG or ~/.config/commy/cli.json: {"url": …, "token": …}).\n\n${exitCodeHelp()}`,
  );
  return program;
}

/** Prints a failure the way a person (or, with --json, a script) can act on. */
function report(error: unknown, json: boolean): void {
  if (json && isCommyError(error)) {
    console.error(JSON.stringify({ error: { code: error.code, message: error.message } }));
  } else if (isCommyError(error)) {
    console.error(`commy: ${error.code}: ${error.message}`);
  } else if (isNamed(error, ["ConfigError", "UsageError", "DataDirLockedError"])) {
    console.error(`commy: ${error.message}`);
  } else {
    console.error("commy: internal error:", error);
  }
}

/**
 * By name, not by class: `serve` runs outside the bundled CLI
 * (scripts/bundle-cli.mjs), so its errors are instances of other copies of
 * the same classes.
 */
function isNamed(error: unknown, names: readonly string[]): error is Error {
  return error instanceof Error && names.includes(error.name);
}

/** The exit code of a failure. */
function failureCode(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help asked for is success; help shown for a missing subcommand is a usage error.
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version")
      return EXIT_OK;
    return EXIT_USAGE;
  }
  if (isNamed(error, ["ConfigError"])) return EXIT_FAILURE;
  return exitCodeOf(error);
}

/**
 * Runs the command line `argv` (without node and the script) and returns
 * the exit code; a long-running command (serve, var watch) returns when it
 * has started, or stopped.
 */
export async function runCommandLine(argv: string[]): Promise<number> {
  try {
    const program = await createProgram(argv[0]);
    await program.parseAsync(argv, { from: "user" });
    return EXIT_OK;
  } catch (error) {
    // Commander has printed its own errors already.
    if (!(error instanceof CommanderError)) report(error, argv.includes("--json"));
    return failureCode(error);
  }
}
