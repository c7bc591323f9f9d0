/**
 * Every benchmark suite, in the order `npm run bench` runs them. A new
 * suite is a module in this folder exporting a `Suite`; add it here.
 */
import type { Suite } from "../lib/suite.js";
import { apiSuite } from "./api.js";
import { authSuite } from "./auth.js";
import { bridgeSuite } from "./bridge.js";
import { cliSuite } from "./cli.js";
import { clientSuite } from "./client.js";
import { opsSuite } from "./ops.js";
import { shmSuite } from "./shm.js";
import { streamSuite } from "./stream.js";

export const suites: readonly Suite[] = [
  shmSuite,
  apiSuite,
  authSuite,
  streamSuite,
  bridgeSuite,
  opsSuite,
  clientSuite,
  cliSuite,
];
