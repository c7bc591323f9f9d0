/**
 * Identity, permissions and audit: what checking a caller costs on every
 * call, and what Authenticate costs.
 *
 * - The cost of authentication on a call: ReadVariable with a tenant
 *   principal's session token (from Authenticate; the principal holds
 *   variable:read) against the same call on a server started with
 *   `unsafeSkipAuthenticationForBenchmarks` (every call runs as the admin,
 *   credentials unread). Both servers are child processes started the same
 *   way (bench/lib/commy-server.ts), both get the very same request bytes
 *   and headers, and they are measured in turn within each run.
 * - Authenticate with an API key: calls per second with several in flight.
 * - Authenticate with a password: per call (alternating call by call with
 *   a bare scrypt of the parameters the server's own hashPassword() writes,
 *   run in this process, and with an unknown user name) and per second
 *   with several in flight, next to the bare scrypt's own rate.
 *
 * Load comes from h2load (bench/lib/unary-load.ts). The session-token
 * comparison runs before any Authenticate load, so that thousands of
 * sessions cached by the authenticating server do not weigh on it.
 */
import { scrypt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { EchoService } from "../../gen/commy/bench/v1/echo_pb.js";
import { CommyService } from "../../gen/commy/v1/commy_service_pb.js";
import { IdentityService, Permission } from "../../gen/commy/v1/identity_pb.js";
import { hashPassword } from "../../src/core/credentials.js";
import { pinPlan } from "../lib/affinity.js";
import { commyClients } from "../lib/commy-client.js";
import { sourceNote, sourceState } from "../lib/source-state.js";
import { CommyServerProcess } from "../lib/commy-server.js";
import { distribution } from "../lib/stats.js";
import type { Metric, Suite, SuiteContext } from "../lib/suite.js";
import { nowNs } from "../lib/timing.js";
import {
  type CaseRun,
  type CaseRuns,
  type CustomCase,
  type UnaryCase,
  caseDetails,
  cpuMetric,
  latencyMetric,
  measureCases,
  medianRatio,
  placementNotes,
  rateMetric,
  runsOf,
  withRatio,
} from "../lib/unary-cases.js";
import { type LoadGenerator, connectUnaryCall, loadGenerator } from "../lib/unary-load.js";

const VALUE_BYTES = 64;
/** Calls of each one-in-flight ReadVariable latency run. */
const LATENCY_CALLS = 2_000;
/** Calls in flight on the one connection in the throughput runs. */
const IN_FLIGHT = 16;
const THROUGHPUT_SECONDS = 2;
/** Authenticate with an API key: calls one at a time per latency run. */
const KEY_LATENCY_CALLS = 600;
/** Authenticate with a password: calls of each kind per latency run, and per rate run with PASSWORD_IN_FLIGHT. */
const PASSWORD_CALLS = 20;
const PASSWORD_RATE_CALLS = 24;
/** As many as the server's libuv thread pool has threads (4 by default), where scrypt runs. */
const PASSWORD_IN_FLIGHT = 4;
/** The cost ceiling: "≤ 1.15×" the unauthenticated call. */
const MAX_AUTH_COST = 1.15;

const TENANT = "bench";
const SERVICE = "auth";
const VARIABLE = "read64";
const PRINCIPAL = "reader";
const PASSWORD = "bench-password-1";

interface ScryptParameters {
  N: number;
  r: number;
  p: number;
  keyLength: number;
  saltLength: number;
}

export const authSuite: Suite = {
  name: "auth",
  description:
    "identity: the cost of a session token on a call, Authenticate by API key and password",
  parts: ["calls", "authenticate"],
  async run(context) {
    const wants = (part: string): boolean =>
      context.parts.length === 0 || context.parts.includes(part);
    const base = process.env.COMMY_BENCH_DIR ?? tmpdir();
    const dir = mkdtempSync(join(base, "commy-bench-auth-"));
    const notes: string[] = [];
    const source = sourceState();
    const details: Record<string, unknown> = { source };
    const changed = sourceNote(source);
    if (changed !== undefined) notes.push(changed);
    const plan = pinPlan();
    const pinned = "skipped" in plan ? undefined : plan;
    const servers: CommyServerProcess[] = [];
    try {
      const load = loadGenerator(dir, context.log, pinned?.writer);
      notes.push(...placementNotes(plan, load, "both servers' main threads"));
      context.log("starting two servers: with authentication, and with it skipped");
      const start = (name: string, skipAuthentication: boolean) =>
        CommyServerProcess.start({ baseDir: dir, name, skipAuthentication, cpu: pinned?.reader });
      const secured = await start("auth", false);
      servers.push(secured);
      const open = await start("noauth", true);
      servers.push(open);
      const credentials = await setUp(secured, open);
      const hash = scryptParameters(await hashPassword(PASSWORD));
      const metrics: Metric[] = [];
      if (wants("calls")) {
        metrics.push(
          ...(await tokenCost(secured, open, credentials.session, load, context, details)),
        );
      }
      if (wants("authenticate")) {
        metrics.push(
          ...(await authenticate(secured, credentials.apiKey, hash, load, context, notes, details)),
        );
      }
      notes.push(
        `password hash: scrypt N=${hash.N} (2^${Math.log2(hash.N)}), r=${hash.r}, p=${hash.p}, ` +
          `${(128 * hash.N * hash.r) / 2 ** 20} MiB per check, ${hash.saltLength}-byte salt, ` +
          `${hash.keyLength}-byte key (read from hashPassword()); docs/security.md: ` +
          '"tens of milliseconds per check on a small VM: a few dozen logins per second per core"',
      );
      return {
        metrics,
        notes,
        details,
        config: {
          loadGenerator: load.description,
          valueBytes: VALUE_BYTES,
          latencyCallsPerRun: LATENCY_CALLS,
          inFlight: IN_FLIGHT,
          throughputSeconds: THROUGHPUT_SECONDS,
          apiKeyLatencyCallsPerRun: KEY_LATENCY_CALLS,
          passwordCallsPerRun: PASSWORD_CALLS,
          passwordRateCallsPerRun: PASSWORD_RATE_CALLS,
          passwordInFlight: PASSWORD_IN_FLIGHT,
          scrypt: hash,
          transport: "Connect, binary (application/proto), HTTP/2 cleartext, one connection",
        },
      };
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

/**
 * On both servers: a tenant, a service, a 64-byte variable. On the secured
 * one also a principal with a password, variable:read and an API key, and
 * a session token from Authenticate with that key. Checks that the token
 * reads and that no token does not.
 */
async function setUp(
  secured: CommyServerProcess,
  open: CommyServerProcess,
): Promise<{ apiKey: string; session: string }> {
  for (const server of [secured, open]) {
    const admin = commyClients(server.baseUrl, server.adminToken);
    try {
      await admin.commy.createTenant({ tenantId: TENANT });
      await admin.commy.createService({ tenantId: TENANT, serviceName: SERVICE });
      await admin.commy.allocateVariable({
        tenantId: TENANT,
        serviceName: SERVICE,
        variableName: VARIABLE,
        initialData: new Uint8Array(VALUE_BYTES).fill(7),
      });
    } finally {
      admin.close();
    }
  }
  const admin = commyClients(secured.baseUrl, secured.adminToken);
  let apiKey: string;
  let session: string;
  try {
    await admin.identity.createPrincipal({ tenantId: TENANT, name: PRINCIPAL, password: PASSWORD });
    await admin.identity.grantPermission({
      tenantId: TENANT,
      principalName: PRINCIPAL,
      permission: Permission.VARIABLE_READ,
    });
    apiKey = (await admin.identity.createApiKey({ tenantId: TENANT, principalName: PRINCIPAL }))
      .apiKey;
    session = (
      await admin.identity.authenticate({
        tenantId: TENANT,
        credential: { case: "apiKey", value: apiKey },
      })
    ).token;
  } finally {
    admin.close();
  }
  const reader = commyClients(secured.baseUrl, session);
  const nobody = commyClients(secured.baseUrl);
  const ref = { tenantId: TENANT, serviceName: SERVICE, variableName: VARIABLE };
  try {
    const read = await reader.commy.readVariable(ref);
    if (read.data.length !== VALUE_BYTES) throw new Error("set-up: the session token read wrong");
    const refused = await nobody.commy.readVariable(ref).then(
      () => false,
      (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated,
    );
    if (!refused) throw new Error("set-up: a call without credentials was not refused");
  } finally {
    reader.close();
    nobody.close();
  }
  return { apiKey, session };
}

/** N, r, p and sizes from a hash as hashPassword() writes it: scrypt$N$r$p$salt$key. */
function scryptParameters(hash: string): ScryptParameters {
  const [kind, n, r, p, salt, key] = hash.split("$");
  if (kind !== "scrypt" || key === undefined || salt === undefined) {
    throw new Error(`unexpected password hash format: ${kind ?? ""}`);
  }
  return {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    keyLength: Buffer.from(key, "base64").length,
    saltLength: Buffer.from(salt, "base64").length,
  };
}

// ---- a session token on every call ----

async function tokenCost(
  secured: CommyServerProcess,
  open: CommyServerProcess,
  session: string,
  load: LoadGenerator,
  context: SuiteContext,
  details: Record<string, unknown>,
): Promise<Metric[]> {
  // The same bytes to both servers; the open one never reads the header.
  const read = connectUnaryCall(
    "read-session",
    CommyService.method.readVariable,
    { tenantId: TENANT, serviceName: SERVICE, variableName: VARIABLE },
    session,
  );
  const latency = (id: string, server: CommyServerProcess): UnaryCase => ({
    id,
    server,
    spec: { call: read, inFlight: 1, requests: LATENCY_CALLS, latencies: true },
  });
  const throughput = (id: string, server: CommyServerProcess): UnaryCase => ({
    id,
    server,
    spec: { call: read, inFlight: IN_FLIGHT, seconds: THROUGHPUT_SECONDS },
  });
  context.log(
    `ReadVariable with a session token vs unauthenticated: ${LATENCY_CALLS} calls one at a ` +
      `time, then ${THROUGHPUT_SECONDS} s with ${IN_FLIGHT} in flight; ${context.runs} runs`,
  );
  const results = await measureCases(
    [
      latency("open.latency", open),
      latency("token.latency", secured),
      throughput("open.throughput", open),
      throughput("token.throughput", secured),
    ],
    load,
    context.runs,
    context.log,
  );
  details.calls = caseDetails(results);
  return tokenMetrics(results);
}

function tokenMetrics(results: CaseRuns): Metric[] {
  const openLatency = runsOf(results, "open.latency");
  const tokenLatency = runsOf(results, "token.latency");
  const openRate = runsOf(results, "open.throughput");
  const tokenRate = runsOf(results, "token.throughput");
  const floor = "unauthenticated";
  const b = `${VALUE_BYTES} B`;
  const rateShare = 1 / MAX_AUTH_COST;
  return [
    latencyMetric(
      {
        id: "open.latency",
        label: `floor: ReadVariable ${b} unauthenticated, 1 in flight`,
        note: "server started with unsafeSkipAuthenticationForBenchmarks",
      },
      openLatency,
    ),
    withRatio(
      latencyMetric(
        {
          id: "token.latency",
          label: `ReadVariable ${b} with a session token, 1 in flight`,
          target: `p50 ≤ ${MAX_AUTH_COST}× unauthenticated`,
          note: "a tenant principal holding variable:read",
        },
        tokenLatency,
      ),
      floor,
      {
        median: medianRatio(tokenLatency, openLatency, (r) => r.p50 as number),
        p99: medianRatio(tokenLatency, openLatency, (r) => r.p99 as number),
      },
      (ratio) => ratio <= MAX_AUTH_COST,
    ),
    rateMetric(
      {
        id: "open.throughput",
        label: `floor: ReadVariable ${b} unauthenticated, ${IN_FLIGHT} in flight`,
      },
      openRate,
    ),
    withRatio(
      rateMetric(
        {
          id: "token.throughput",
          label: `ReadVariable ${b} with a session token, ${IN_FLIGHT} in flight`,
          target: `≥ ${rateShare.toFixed(2)}× (cost ≤ ${MAX_AUTH_COST}×)`,
        },
        tokenRate,
      ),
      floor,
      { median: medianRatio(tokenRate, openRate, (r) => r.rate) },
      (ratio) => ratio >= rateShare,
    ),
    cpuMetric(
      {
        id: "open.cpu",
        label: `server CPU per call: unauthenticated (${IN_FLIGHT} in flight)`,
        note: "the server process's CPU time (all threads) over the calls of the run",
      },
      openRate,
    ),
    withRatio(
      cpuMetric(
        { id: "token.cpu", label: `server CPU per call: session token (${IN_FLIGHT} in flight)` },
        tokenRate,
      ),
      floor,
      { median: medianRatio(tokenRate, openRate, (r) => r.cpuPerCall) },
    ),
  ];
}

// ---- Authenticate ----

async function authenticate(
  server: CommyServerProcess,
  apiKey: string,
  hash: ScryptParameters,
  load: LoadGenerator,
  context: SuiteContext,
  notes: string[],
  details: Record<string, unknown>,
): Promise<Metric[]> {
  const byKey = connectUnaryCall("auth-key", IdentityService.method.authenticate, {
    tenantId: TENANT,
    credential: { case: "apiKey", value: apiKey },
  });
  const byPassword = connectUnaryCall("auth-password", IdentityService.method.authenticate, {
    tenantId: TENANT,
    credential: { case: "password", value: { username: PRINCIPAL, password: PASSWORD } },
  });
  // The floor of a unary call on this server, with the same headers (none).
  const echo = connectUnaryCall("echo", EchoService.method.echo, {
    payload: new Uint8Array(VALUE_BYTES).fill(7),
  });
  const heapBefore = await server.usage({ collect: true });
  context.log(
    `Authenticate: password, unknown user and bare scrypt (${PASSWORD_CALLS} each, one at a ` +
      `time, alternating; ${PASSWORD_RATE_CALLS} with ${PASSWORD_IN_FLIGHT} in flight), API key ` +
      `(${KEY_LATENCY_CALLS} one at a time, ${THROUGHPUT_SECONDS} s with ${IN_FLIGHT} in flight); ` +
      `${context.runs} runs`,
  );
  const results = await measureCases(
    [
      passwordOneAtATime(server, hash),
      scryptRate(hash),
      {
        id: "password.rate",
        server,
        spec: {
          call: byPassword,
          inFlight: PASSWORD_IN_FLIGHT,
          requests: PASSWORD_RATE_CALLS,
        },
      },
      {
        id: "key.latency",
        server,
        spec: { call: byKey, inFlight: 1, requests: KEY_LATENCY_CALLS, latencies: true },
      },
      {
        id: "echo.throughput",
        server,
        spec: { call: echo, inFlight: IN_FLIGHT, seconds: THROUGHPUT_SECONDS },
      },
      {
        id: "key.throughput",
        server,
        spec: { call: byKey, inFlight: IN_FLIGHT, seconds: THROUGHPUT_SECONDS },
      },
    ],
    load,
    context.runs,
    context.log,
  );
  const heapAfter = await server.usage({ collect: true });
  details.authenticate = caseDetails(results);
  // The calls that opened a session (not the unknown user's, not the bare hashes).
  const sessions = ["password.latency", "password.rate", "key.latency", "key.throughput"]
    .flatMap((id) => results.get(id) ?? [])
    .reduce((sum, run) => sum + run.calls, 0);
  const grown = heapAfter.heapUsedBytes - heapBefore.heapUsedBytes;
  details.sessionMemory = {
    heapBeforeBytes: heapBefore.heapUsedBytes,
    heapAfterBytes: heapAfter.heapUsedBytes,
    rssAfterBytes: heapAfter.rssBytes,
    measuredAuthenticateCalls: sessions,
  };
  notes.push(
    `the authenticating server's heap grew by ${(grown / 2 ** 20).toFixed(1)} MiB over ` +
      `${sessions.toLocaleString("en-US")} measured Authenticate calls (after a full GC; ` +
      "warm-up calls add to it)",
  );
  return authenticateMetrics(results, hash);
}

/** One bare scrypt with the server's parameters, in this process. */
function bareScrypt(hash: ScryptParameters): Promise<void> {
  const salt = Buffer.alloc(hash.saltLength, 1);
  return new Promise((resolve, reject) =>
    scrypt(
      PASSWORD,
      salt,
      hash.keyLength,
      { N: hash.N, r: hash.r, p: hash.p, maxmem: 64 * 1024 * 1024 },
      (error) => (error === null ? resolve() : reject(error)),
    ),
  );
}

/** A run's figures from each call's time (µs) and the run's length (s). */
function runOf(times: readonly number[], seconds: number): CaseRun {
  const shape = distribution(times);
  return {
    rate: times.length / seconds,
    p50: shape.p50,
    p99: shape.p99,
    cpuPerCall: Number.NaN,
    calls: times.length,
  };
}

/**
 * One at a time, alternating call by call (the order rotating): a bare
 * scrypt in this process, Authenticate with the password, Authenticate
 * with an unknown user name. The three then see the same moments of a
 * shared machine, which back-to-back batches of a few dozen 60 ms calls
 * do not. The calls go through a typed connect-es client (its own cost is
 * well under 1 ms of a ~60 ms call).
 */
function passwordOneAtATime(server: CommyServerProcess, hash: ScryptParameters): CustomCase {
  const ids = ["scrypt.latency", "password.latency", "password.unknown"] as const;
  const credential = (username: string) => ({
    tenantId: TENANT,
    credential: { case: "password" as const, value: { username, password: PASSWORD } },
  });
  return {
    ids,
    run: async (warmUp) => {
      const count = warmUp ? Math.ceil(PASSWORD_CALLS / 3) : PASSWORD_CALLS;
      const clients = commyClients(server.baseUrl);
      const unknownRefused = async (): Promise<void> => {
        const refused = await clients.identity.authenticate(credential("nobody")).then(
          () => false,
          (error: unknown) => error instanceof ConnectError && error.code === Code.Unauthenticated,
        );
        if (!refused) throw new Error("Authenticate with an unknown user was not refused");
      };
      const steps: (() => Promise<unknown>)[] = [
        () => bareScrypt(hash),
        () => clients.identity.authenticate(credential(PRINCIPAL)),
        unknownRefused,
      ];
      const times: number[][] = [[], [], []];
      const spent = [0, 0, 0];
      try {
        await steps[1]?.(); // the connection, untimed
        for (let i = 0; i < count; i++) {
          for (let k = 0; k < steps.length; k++) {
            const step = (i + k) % steps.length;
            const t0 = nowNs();
            await steps[step]?.();
            const ns = Number(nowNs() - t0);
            times[step]?.push(ns / 1000);
            spent[step] = (spent[step] ?? 0) + ns / 1e9;
          }
        }
      } finally {
        clients.close();
      }
      return Object.fromEntries(
        ids.map((id, k) => [id, runOf(times[k] ?? [], spent[k] ?? Number.NaN)]),
      );
    },
  };
}

/** Bare scrypts, PASSWORD_IN_FLIGHT at a time, in this process: the rate floor. */
function scryptRate(hash: ScryptParameters): CustomCase {
  return {
    ids: ["scrypt.rate"],
    run: async (warmUp) => {
      const count = warmUp ? Math.ceil(PASSWORD_RATE_CALLS / 3) : PASSWORD_RATE_CALLS;
      const times: number[] = [];
      let next = 0;
      const start = nowNs();
      const worker = async (): Promise<void> => {
        while (next < count) {
          next++;
          const t0 = nowNs();
          await bareScrypt(hash);
          times.push(Number(nowNs() - t0) / 1000);
        }
      };
      await Promise.all(Array.from({ length: PASSWORD_IN_FLIGHT }, worker));
      return { "scrypt.rate": runOf(times, Number(nowNs() - start) / 1e9) };
    },
  };
}

function authenticateMetrics(results: CaseRuns, hash: ScryptParameters): Metric[] {
  const keyRate = runsOf(results, "key.throughput");
  const echoRate = runsOf(results, "echo.throughput");
  const floorLatency = runsOf(results, "scrypt.latency");
  const passwordLatency = runsOf(results, "password.latency");
  const unknown = runsOf(results, "password.unknown");
  const floorRate = runsOf(results, "scrypt.rate");
  const passwordRate = runsOf(results, "password.rate");
  const scryptName = `scrypt N=2^${Math.log2(hash.N)}, r=${hash.r}, p=${hash.p}`;
  return [
    latencyMetric(
      { id: "key.latency", label: "Authenticate, API key, 1 in flight" },
      runsOf(results, "key.latency"),
    ),
    rateMetric(
      {
        id: "echo.throughput",
        label: `floor: Echo ${VALUE_BYTES} B, ${IN_FLIGHT} in flight (same server, no credentials)`,
      },
      echoRate,
    ),
    withRatio(
      rateMetric(
        {
          id: "key.throughput",
          label: `Authenticate, API key, ${IN_FLIGHT} in flight`,
          target: "≥ 2,000/s",
          note: "each call: a new token, its SHA-256, a session row and an audit row (one commit)",
        },
        keyRate,
      ),
      "Echo",
      { median: medianRatio(keyRate, echoRate, (r) => r.rate) },
    ),
    cpuMetric({ id: "echo.cpu", label: "server CPU per Echo" }, echoRate),
    withRatio(
      cpuMetric({ id: "key.cpu", label: "server CPU per Authenticate, API key" }, keyRate),
      "Echo",
      { median: medianRatio(keyRate, echoRate, (r) => r.cpuPerCall) },
    ),
    latencyMetric(
      { id: "scrypt.latency", label: `floor: bare ${scryptName}, 1 at a time (this process)` },
      floorLatency,
      "ms",
    ),
    withRatio(
      latencyMetric(
        {
          id: "password.latency",
          label: "Authenticate, password, 1 in flight",
          target: "p50 ≤ 1.25× bare scrypt, < 100 ms",
        },
        passwordLatency,
        "ms",
      ),
      "scrypt",
      {
        median: medianRatio(passwordLatency, floorLatency, (r) => r.p50 as number),
        p99: medianRatio(passwordLatency, floorLatency, (r) => r.p99 as number),
      },
    ),
    withRatio(
      latencyMetric(
        {
          id: "password.unknown",
          label: "Authenticate, unknown user, 1 in flight",
          note: "must cost what a known user costs (a dummy hash is checked)",
        },
        unknown,
        "ms",
      ),
      "scrypt",
      { median: medianRatio(unknown, floorLatency, (r) => r.p50 as number) },
    ),
    rateMetric(
      {
        id: "scrypt.rate",
        label: `floor: bare ${scryptName}, ${PASSWORD_IN_FLIGHT} at a time (this process)`,
      },
      floorRate,
    ),
    withRatio(
      rateMetric(
        {
          id: "password.rate",
          label: `Authenticate, password, ${PASSWORD_IN_FLIGHT} in flight`,
          target: "≥ 0.8× bare scrypt",
        },
        passwordRate,
      ),
      "scrypt",
      { median: medianRatio(passwordRate, floorRate, (r) => r.rate) },
      (ratio) => ratio >= 0.8,
    ),
  ].map((metric) => judgeAuthenticate(metric));
}

/** The checks that are not a plain ratio. */
function judgeAuthenticate(metric: Metric): Metric {
  if (metric.id === "key.throughput") metric.pass = metric.median >= 2_000;
  if (metric.id === "password.latency") {
    metric.pass = (metric.ratio?.median ?? Infinity) <= 1.25 && metric.median < 100;
  }
  return metric;
}
