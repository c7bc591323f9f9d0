/**
 * Which server a client command calls and as whom: each setting comes
 * from the first of --url/--token, the environment (COMMY_URL,
 * COMMY_TOKEN), the CLI config file (--config, else COMMY_CLI_CONFIG, else
 * $XDG_CONFIG_HOME/commy/cli.json or ~/.config/commy/cli.json) that sets
 * it, else the default (http://127.0.0.1:8080, no token).
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Command } from "commander";
import type { CommyClient } from "../client/index.js";
import { UsageError } from "./exit-codes.js";
import { type Output, createOutput } from "./output.js";

/** The server a client command calls when nothing says otherwise. */
export const DEFAULT_URL = "http://127.0.0.1:8080";

/** The options every client command takes (parsed by commander). */
export interface ClientFlags {
  url?: string;
  token?: string;
  config?: string;
  timeout?: string;
  json?: boolean;
}

/** Where to connect, as whom, and the limit of each call. */
export interface Connection {
  url: string;
  token: string | undefined;
  timeoutMs: number;
}

/** The keys a CLI config file may hold. */
interface ConfigFile {
  url?: string;
  token?: string;
}

/** Adds the connection and output options to a client command. */
export function addClientOptions(command: Command): Command {
  return command
    .option("--url <url>", `server URL (env COMMY_URL; default ${DEFAULT_URL})`)
    .option(
      "--token <token>",
      "bearer token: an API key, a session or the admin token (env COMMY_TOKEN)",
    )
    .option(
      "--config <file>",
      "CLI config file, JSON {url, token} (env COMMY_CLI_CONFIG; default ~/.config/commy/cli.json)",
    )
    .option("--timeout <ms>", "milliseconds each call may take; 0 for no limit", "10000")
    .option("--json", "print JSON for scripts instead of text for people");
}

/** The default config file path for this environment. */
export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "commy", "cli.json");
}

/** The connection `flags` and `env` (and the config file they point to) describe. */
export function resolveConnection(flags: ClientFlags, env: NodeJS.ProcessEnv): Connection {
  const explicitFile = flags.config ?? (env.COMMY_CLI_CONFIG || undefined);
  const file = readConfig(explicitFile ?? defaultConfigPath(env), explicitFile !== undefined);
  const pick = (...values: (string | undefined)[]): string | undefined =>
    values.find((value) => value !== undefined && value !== "");
  const timeoutMs = Number(flags.timeout ?? "10000");
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
    throw new UsageError(
      `--timeout must be a whole number of milliseconds ≥ 0 (got ${flags.timeout})`,
    );
  }
  const url = pick(flags.url, env.COMMY_URL, file.url) ?? DEFAULT_URL;
  if (!/^https?:\/\//.test(url)) {
    throw new UsageError(`the server URL must start with http:// or https:// (got ${url})`);
  }
  return { url, token: pick(flags.token, env.COMMY_TOKEN, file.token), timeoutMs };
}

/** The config file's settings; a missing default file is no settings, a missing named one an error. */
function readConfig(path: string, required: boolean): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (!required && (error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UsageError(`cannot read the CLI config file ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`the CLI config file ${path} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`the CLI config file ${path} must hold a JSON object`);
  }
  const config = parsed as Record<string, unknown>;
  for (const key of ["url", "token"] as const) {
    if (config[key] !== undefined && typeof config[key] !== "string") {
      throw new UsageError(`the CLI config file ${path}: "${key}" must be a string`);
    }
  }
  return { url: config.url as string | undefined, token: config.token as string | undefined };
}

/** What a client command's body gets. */
export interface ClientContext {
  client: CommyClient;
  output: Output;
  connection: Connection;
}

/**
 * Runs a client command's body with a client of the resolved server,
 * closed afterwards. The client library is imported here, on first use,
 * so that `--help` and `serve` never load it and a call loads nothing else.
 */
export async function runWithClient(
  command: Command,
  body: (context: ClientContext) => Promise<void>,
): Promise<void> {
  const flags = command.opts<ClientFlags>();
  const output = createOutput(flags.json === true);
  const connection = resolveConnection(flags, process.env);
  const { createCommyClient } = await import("../client/commy-client.js");
  const client = createCommyClient({
    baseUrl: connection.url,
    token: connection.token,
    timeoutMs: connection.timeoutMs,
  });
  // A person waiting on a slow or unreachable server learns what is going on.
  const slow = setTimeout(() => output.progress(`waiting for ${connection.url} …`), 1_000);
  slow.unref();
  try {
    await body({ client, output, connection });
  } finally {
    clearTimeout(slow);
    client.close();
  }
}
