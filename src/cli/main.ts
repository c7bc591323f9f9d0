#!/usr/bin/env node
/**
 * The `commy` command. For now: `commy serve` with the server's options.
 */
import { parseArgs } from "node:util";
import { ConfigError, SERVER_OPTIONS, loadServerConfig } from "../config.js";
import { startServer } from "../server.js";

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
      ...Object.fromEntries(SERVER_OPTIONS.map((o) => [o.flag, { type: "string" as const }])),
    },
  });
  if (values.help === true) {
    console.log("usage: commy serve [options]\n");
    for (const o of SERVER_OPTIONS)
      console.log(`  --${o.flag.padEnd(24)} ${o.help} (env ${o.env})`);
    console.log(
      `  --${"config".padEnd(24)} a JSON file with any of the options above (env COMMY_CONFIG)`,
    );
    console.log("\nexample: commy serve --port 8080 --data-dir ./commy-data");
    return;
  }
  const config = loadServerConfig(values, process.env, values.config ?? process.env.COMMY_CONFIG);
  const server = await startServer(config);
  let signals = 0;
  const stop = (): void => {
    signals++;
    if (signals > 1) process.exit(1);
    void server.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === "serve") return serve(rest);
  console.error("usage: commy serve [--help]");
  process.exitCode = 2;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (
    error instanceof ConfigError ||
    (error instanceof Error && error.name === "DataDirLockedError")
  ) {
    console.error(`commy: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exitCode = 1;
});
