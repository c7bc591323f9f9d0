#!/usr/bin/env node
// Bundles the compiled CLI (<out>/src/cli/main.js, from tsc) into one file,
// <out>/src/cli/commy.js, the package's `commy` bin. Node 20 loads each ESM
// file separately, and the client path (connect-es, protobuf-es) is a few
// hundred of them: one file starts `commy var get` about a third faster
// (docs/performance.md, CLI). `serve` stays outside the bundle
// (./commands/serve.js, and the server's own dependencies), so the server
// runs the same files as `npm start`; the bundle sits beside main.js, so
// relative paths (the native addon in build/) resolve the same from both.
//
// Usage: node scripts/bundle-cli.mjs [out-dir]   (default: dist)
import { build } from "esbuild";
import { join, resolve } from "node:path";
import process from "node:process";

const outDir = resolve(process.argv[2] ?? "dist");
await build({
  entryPoints: [join(outDir, "src/cli/main.js")],
  outfile: join(outDir, "src/cli/commy.js"),
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["./commands/serve.js", "better-sqlite3", "pino", "ws", "prom-client"],
  // Bundled CommonJS dependencies call require(); ESM has none of its own.
  banner: {
    js: "import { createRequire as __commyCreateRequire } from 'node:module'; const require = __commyCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
});
