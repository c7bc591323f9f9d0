/**
 * `commy serve`: runs a server. Its options are generated from
 * SERVER_OPTIONS (src/config.ts), so that flags, environment names, help
 * and docs never disagree; precedence is flags > COMMY_* > --config file >
 * defaults, as loadServerConfig applies it.
 */
import { type Command, Option } from "commander";
import { SERVER_OPTIONS, loadServerConfig } from "../../config.js";
import { addExamples } from "../examples.js";

export function registerServeCommand(program: Command): void {
  const serve = program
    .command("serve")
    .description(
      "run a Commy server (Connect, gRPC, gRPC-Web and the WebSocket bridge on one port)",
    );
  // Commander names option values in camelCase; the config loader wants flag names.
  const flagOf = new Map<string, string>();
  for (const spec of SERVER_OPTIONS) {
    const option = new Option(`--${spec.flag} <value>`, `${spec.help} (env ${spec.env})`);
    flagOf.set(option.attributeName(), spec.flag);
    serve.addOption(option);
  }
  serve.option("--config <file>", "a JSON file with any of the options above (env COMMY_CONFIG)");
  serve.action(async (options: Record<string, string | undefined>) => {
    const flags: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(options)) flags[flagOf.get(name) ?? name] = value;
    const config = loadServerConfig(flags, process.env, options.config ?? process.env.COMMY_CONFIG);
    // Loaded only here: client commands never load the server or its native modules.
    const { startServer } = await import("../../server.js");
    const server = await startServer(config);
    let signals = 0;
    const stop = (): void => {
      signals++;
      if (signals > 1) process.exit(1);
      void server.close().then(() => process.exit(0));
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  addExamples(
    serve,
    "commy serve --port 8080 --data-dir ./commy-data",
    "COMMY_PORT=9000 commy serve --config ./commy.json",
  );
}
