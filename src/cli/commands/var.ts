/**
 * `commy var create|get|set|list|delete|watch`: the variables of a
 * service, their values (as text, hex, base64 or a file) and their changes.
 */
import type { Command } from "commander";
import type { VariableChange, VariableInfo } from "../../client/index.js";
import { UsageError } from "../exit-codes.js";
import { addClientOptions, runWithClient } from "../connection.js";
import { addExamples } from "../examples.js";
import type { Column, Output } from "../output.js";
import {
  parseServicePath,
  parseVariablePath,
  parseWatchPath,
  variablePathText,
} from "../resource-path.js";
import {
  type Encoding,
  type ValueSources,
  parseEncoding,
  showValue,
  valueFrom,
  writeValueFile,
} from "../value-encoding.js";

const COLUMNS: readonly Column<VariableInfo>[] = [
  { header: "VARIABLE", value: (v) => v.name },
  { header: "VERSION", value: (v) => String(v.version) },
  { header: "SIZE", value: (v) => String(v.size) },
  { header: "CAPACITY", value: (v) => String(v.capacity) },
];

const ENCODING_HELP = "show the value as text, hex or base64 (text that is not UTF-8: base64)";

/** Adds --hex, --base64 and --file, the other ways to give a value than as text. */
function addValueOptions(command: Command): Command {
  return command
    .option("--hex <hex>", "the value as hex digits")
    .option("--base64 <base64>", "the value as base64")
    .option("--file <path>", "the value is this file's content ('-': standard input)");
}

function wholeNumber(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const number = Number(text);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new UsageError(`${option} must be a whole number ≥ 0 (got ${text})`);
  }
  return number;
}

export function registerVarCommands(program: Command): void {
  const variable = program
    .command("var")
    .description("create, read, write, list, delete and watch the variables of a service");
  addExamples(
    variable,
    "commy var set acme/config/mode on --create",
    "commy var get acme/config/mode",
    "commy var watch acme/config",
  );
  registerCreate(variable);
  registerGet(variable);
  registerSet(variable);
  registerList(variable);
  registerDelete(variable);
  registerWatch(variable);
}

function registerCreate(variable: Command): void {
  const create = variable
    .command("create")
    .description("create a variable at version 1, empty or with an initial value")
    .argument("<tenant/service/variable>", "the variable")
    .argument("[value]", "the initial value as text")
    .option("--capacity <bytes>", "bytes to reserve for later values");
  addValueOptions(create);
  addClientOptions(create).action(
    (path: string, text: string | undefined, _: unknown, command: Command) =>
      runWithClient(command, async ({ client, output }) => {
        const options = command.opts<ValueSources & { capacity?: string }>();
        const ref = parseVariablePath(path);
        const initialData = valueFrom(text, options);
        const capacity = wholeNumber(options.capacity, "--capacity");
        const created = await client.allocateVariable(ref, { initialData, capacity });
        output.result(
          `created ${path} (version ${created.version}, ${created.size} of ${created.capacity} bytes)`,
          { ...ref, ...created },
        );
      }),
  );
  addExamples(
    create,
    "commy var create acme/config/mode off --capacity 64",
    "commy var create acme/config/blob --file ./blob.bin",
  );
}

function registerGet(variable: Command): void {
  const get = variable
    .command("get")
    .description("print a variable's value (and, with --json, its version)")
    .argument("<tenant/service/variable>", "the variable")
    .option("--encoding <encoding>", ENCODING_HELP, "text")
    .option("--out <file>", "write the value's bytes, exactly, to this file");
  addClientOptions(get).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const options = command.opts<{ encoding: string; out?: string }>();
      const encoding = parseEncoding(options.encoding);
      const ref = parseVariablePath(path);
      const { data, version } = await client.readVariable(ref);
      if (options.out !== undefined) {
        writeValueFile(options.out, data);
        const message = `wrote ${data.length} bytes of ${path} (version ${version}) to ${options.out}`;
        return output.result(message, { ...ref, version, size: data.length, file: options.out });
      }
      const shown = showValue(data, encoding, "base64");
      if (output.json) return output.result("", { ...ref, version, size: data.length, ...shown });
      if (shown.encoding !== encoding) output.note(`${path} is not UTF-8 text: shown as base64`);
      output.raw(`${shown.value}\n`);
    }),
  );
  addExamples(
    get,
    "commy var get acme/config/mode",
    "commy var get acme/config/blob --encoding hex",
    "commy var get acme/config/blob --out ./blob.bin",
  );
}

function registerSet(variable: Command): void {
  const set = variable
    .command("set")
    .description("write a variable's value; prints the new version")
    .argument("<tenant/service/variable>", "the variable")
    .argument("[value]", "the value as text")
    .option("--expect-version <version>", "compare-and-set: write only at this version")
    .option("--create", "create the variable if it does not exist");
  addValueOptions(set);
  addClientOptions(set).action(
    (path: string, text: string | undefined, _: unknown, command: Command) =>
      runWithClient(command, async ({ client, output }) => {
        const options = command.opts<ValueSources & { expectVersion?: string; create?: boolean }>();
        const ref = parseVariablePath(path);
        const data = valueFrom(text, options);
        if (data === undefined) {
          throw new UsageError("give the value: as text, or with --hex, --base64 or --file");
        }
        const version = await client.writeVariable(ref, data, {
          expectedVersion: wholeNumber(options.expectVersion, "--expect-version"),
          createIfMissing: options.create === true,
        });
        output.result(`${variablePathText(ref)}: version ${version}`, {
          ...ref,
          version,
          size: data.length,
        });
      }),
  );
  addExamples(
    set,
    "commy var set acme/config/mode on",
    "commy var set acme/config/mode on --expect-version 3",
    "commy var set acme/config/blob --hex 00ff10 --create",
    "cat blob.bin | commy var set acme/config/blob --file -",
  );
}

function registerList(variable: Command): void {
  const list = variable
    .command("list")
    .description("list a service's variables with version, size and capacity")
    .argument("<tenant/service>", "the service");
  addClientOptions(list).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      output.table(await client.listVariables(parseServicePath(path)), COLUMNS);
    }),
  );
  addExamples(list, "commy var list acme/config");
}

function registerDelete(variable: Command): void {
  const remove = variable
    .command("delete")
    .description("delete a variable (its name may be allocated again)")
    .argument("<tenant/service/variable>", "the variable");
  addClientOptions(remove).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const ref = parseVariablePath(path);
      await client.deallocateVariable(ref);
      output.result(`deleted ${path}`, { ...ref, deleted: true });
    }),
  );
  addExamples(remove, "commy var delete acme/config/mode");
}

function registerWatch(variable: Command): void {
  const watch = variable
    .command("watch")
    .description(
      "print the changes of a variable, or of every variable of a service, until interrupted " +
        "(Ctrl-C: exit 0); starts with the current value(s)",
    )
    .argument("<tenant/service[/variable]>", "a variable, or a whole service")
    .option("--from-version <version>", "one variable: only changes after this version")
    .option("--encoding <encoding>", ENCODING_HELP, "text");
  addClientOptions(watch).action((path: string, _: unknown, command: Command) =>
    runWithClient(command, async ({ client, output }) => {
      const options = command.opts<{ fromVersion?: string; encoding: string }>();
      const encoding = parseEncoding(options.encoding);
      const target = parseWatchPath(path);
      const fromVersion = wholeNumber(options.fromVersion, "--from-version");
      if (fromVersion !== undefined && target.variableName === undefined) {
        throw new UsageError("--from-version needs a variable, not a whole service");
      }
      const stop = new AbortController();
      const interrupt = (): void => stop.abort();
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      output.progress(`watching ${path} (Ctrl-C to stop) …`);
      try {
        const changes = client.subscribe(
          { ...target, fromVersion },
          {
            signal: stop.signal,
            onReconnect: (error) => output.note(`reconnecting: ${error.message}`),
          },
        );
        for await (const change of changes) printChange(change, encoding, output);
      } finally {
        process.off("SIGINT", interrupt);
        process.off("SIGTERM", interrupt);
      }
      if (stop.signal.aborted) output.note("stopped");
    }),
  );
  addExamples(
    watch,
    "commy var watch acme/config/mode",
    "commy var watch acme/config --json | jq -c '{variableName, version, value}'",
  );
}

function printChange(change: VariableChange, encoding: Encoding, output: Output): void {
  const shown = showValue(change.data, encoding, "base64");
  const skipped = change.skipped > 0 ? ` (skipped ${change.skipped})` : "";
  const line =
    change.kind === "deleted"
      ? `${change.variableName} deleted`
      : `${change.variableName} v${change.version} ${change.kind}${skipped}: ${shown.value}`;
  output.event(line, {
    variableName: change.variableName,
    version: change.version,
    kind: change.kind,
    skipped: change.skipped,
    ...shown,
  });
}
