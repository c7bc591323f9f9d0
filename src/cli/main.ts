#!/usr/bin/env node
/**
 * The `commy` executable (package.json "bin"): runs the command tree of
 * program.ts and exits with its code.
 */
import module from "node:module";

// Where node has it (≥ 22.1), compiled code is cached across runs, which
// shortens every start; first, so that the imports below profit.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { isClientCommand, runCommandLine } = await import("./program.js");

const argv = process.argv.slice(2);
// A client command will need the client library: start loading it now,
// while the command tree is built (runWithClient awaits the same import).
if (isClientCommand(argv[0])) void import("../client/commy-client.js").catch(() => undefined);
process.exitCode = await runCommandLine(argv);
