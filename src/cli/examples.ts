/** Every command's --help ends with examples of its use. */
import type { Command } from "commander";

/** Appends "Examples:" with these command lines to the command's help. */
export function addExamples(command: Command, ...lines: string[]): Command {
  const title = lines.length === 1 ? "Example" : "Examples";
  return command.addHelpText(
    "after",
    `\n${title}:\n${lines.map((line) => `  $ ${line}`).join("\n")}`,
  );
}
