/**
 * Server configuration: flags > environment (COMMY_*) > config file (JSON)
 * > defaults. One table describes every option, so the help text, the
 * environment names and the docs come from the same place.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { DEFAULT_TENANT_QUOTAS } from "./core/tenant-quotas.js";

/** Everything `commy serve` can be told. */
export interface ServerConfig {
  host: string;
  port: number;
  dataDir: string;
  /** Bytes each service file may grow to. */
  maxServiceFileSize: number;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** PEM certificate (chain) file: with tlsKey, every transport is served over TLS only. */
  tlsCert: string;
  /** PEM private key file of tlsCert. */
  tlsKey: string;
  /** PEM CA file: clients may then authenticate with a certificate it signed (subject CN "tenant/principal"). */
  tlsClientCa: string;
  /** Largest legacy WebSocket message, in bytes (a larger one closes with 1009). */
  wsMaxMessageBytes: number;
  /** Seconds a legacy WebSocket connection may send nothing before it is closed (0: never). */
  wsIdleTimeout: number;
  /** Seconds between WebSocket pings; a peer that misses one is cut (0: no pings). */
  wsPingInterval: number;
  /** Legacy WebSocket connections served at once. */
  wsMaxConnections: number;
  /** Serve Prometheus metrics on /metrics (and count for them). */
  metrics: boolean;
  /** Largest request or response message of the typed API, in bytes. */
  maxMessageBytes: number;
  /** Client connections open at once (every transport); more are closed at once. */
  maxConnections: number;
  /** Concurrent HTTP/2 streams (calls) one connection may have open. */
  maxStreamsPerConnection: number;
  /** Per-tenant quotas: services, variables (all services), bytes of service files. */
  tenantMaxServices: number;
  tenantMaxVariables: number;
  tenantMaxBytes: number;
}

type Kind = "string" | "port" | "bytes" | "level" | "count" | "seconds" | "boolean";

interface OptionSpec {
  key: keyof ServerConfig;
  flag: string;
  env: string;
  kind: Kind;
  help: string;
}

export const SERVER_OPTIONS: readonly OptionSpec[] = [
  { key: "host", flag: "host", env: "COMMY_HOST", kind: "string", help: "address to listen on" },
  {
    key: "port",
    flag: "port",
    env: "COMMY_PORT",
    kind: "port",
    help: "TCP port (0: any free port)",
  },
  {
    key: "dataDir",
    flag: "data-dir",
    env: "COMMY_DATA_DIR",
    kind: "string",
    help: "where the store and service files live",
  },
  {
    key: "maxServiceFileSize",
    flag: "max-service-file-size",
    env: "COMMY_MAX_SERVICE_FILE_SIZE",
    kind: "bytes",
    help: "largest size of one service file, in bytes",
  },
  {
    key: "logLevel",
    flag: "log-level",
    env: "COMMY_LOG_LEVEL",
    kind: "level",
    help: "fatal|error|warn|info|debug|trace|silent",
  },
  {
    key: "tlsCert",
    flag: "tls-cert",
    env: "COMMY_TLS_CERT",
    kind: "string",
    help: "PEM certificate file; with --tls-key, serve TLS only (h2/http1.1 by ALPN, wss)",
  },
  {
    key: "tlsKey",
    flag: "tls-key",
    env: "COMMY_TLS_KEY",
    kind: "string",
    help: "PEM private key file of --tls-cert",
  },
  {
    key: "tlsClientCa",
    flag: "tls-client-ca",
    env: "COMMY_TLS_CLIENT_CA",
    kind: "string",
    help: "PEM CA file: a client certificate it signed, CN <tenant>/<principal>, authenticates that principal",
  },
  {
    key: "wsMaxMessageBytes",
    flag: "ws-max-message-bytes",
    env: "COMMY_WS_MAX_MESSAGE_BYTES",
    kind: "count",
    help: "largest legacy WebSocket message in bytes (larger: close 1009)",
  },
  {
    key: "wsIdleTimeout",
    flag: "ws-idle-timeout",
    env: "COMMY_WS_IDLE_TIMEOUT",
    kind: "seconds",
    help: "seconds a WebSocket client may send no message before it is closed (0: never)",
  },
  {
    key: "wsPingInterval",
    flag: "ws-ping-interval",
    env: "COMMY_WS_PING_INTERVAL",
    kind: "seconds",
    help: "seconds between WebSocket pings; no pong by the next one: cut (0: off)",
  },
  {
    key: "wsMaxConnections",
    flag: "ws-max-connections",
    env: "COMMY_WS_MAX_CONNECTIONS",
    kind: "count",
    help: "legacy WebSocket connections served at once (more: HTTP 503)",
  },
  {
    key: "metrics",
    flag: "metrics",
    env: "COMMY_METRICS",
    kind: "boolean",
    help: "serve Prometheus metrics on /metrics: true|false",
  },
  {
    key: "maxMessageBytes",
    flag: "max-message-bytes",
    env: "COMMY_MAX_MESSAGE_BYTES",
    kind: "count",
    help: "largest typed-API request or response, in bytes (larger: resource_exhausted)",
  },
  {
    key: "maxConnections",
    flag: "max-connections",
    env: "COMMY_MAX_CONNECTIONS",
    kind: "count",
    help: "client connections open at once, all transports (more are closed)",
  },
  {
    key: "maxStreamsPerConnection",
    flag: "max-streams-per-connection",
    env: "COMMY_MAX_STREAMS_PER_CONNECTION",
    kind: "count",
    help: "concurrent HTTP/2 streams per connection (the HTTP/2 setting)",
  },
  {
    key: "tenantMaxServices",
    flag: "tenant-max-services",
    env: "COMMY_TENANT_MAX_SERVICES",
    kind: "count",
    help: "services one tenant may have (more: RESOURCE_EXHAUSTED)",
  },
  {
    key: "tenantMaxVariables",
    flag: "tenant-max-variables",
    env: "COMMY_TENANT_MAX_VARIABLES",
    kind: "count",
    help: "variables one tenant may have over all its services",
  },
  {
    key: "tenantMaxBytes",
    flag: "tenant-max-bytes",
    env: "COMMY_TENANT_MAX_BYTES",
    kind: "count",
    help: "bytes of service files one tenant may use (no new variables beyond)",
  },
];

export const DEFAULT_CONFIG: ServerConfig = {
  host: "127.0.0.1",
  port: 8080,
  dataDir: "./commy-data",
  maxServiceFileSize: 1024 * 1024 * 1024,
  logLevel: "info",
  tlsCert: "",
  tlsKey: "",
  tlsClientCa: "",
  wsMaxMessageBytes: 1024 * 1024,
  wsIdleTimeout: 600,
  wsPingInterval: 30,
  wsMaxConnections: 10_000,
  metrics: true,
  maxMessageBytes: 4 * 1024 * 1024,
  maxConnections: 20_000,
  maxStreamsPerConnection: 1000,
  tenantMaxServices: DEFAULT_TENANT_QUOTAS.maxServices,
  tenantMaxVariables: DEFAULT_TENANT_QUOTAS.maxVariables,
  tenantMaxBytes: DEFAULT_TENANT_QUOTAS.maxBytes,
};

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

/** A configuration problem, reported to the operator as it is. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

function parseValue(spec: OptionSpec, raw: unknown, source: string): string | number | boolean {
  const text = String(raw);
  const fail = (what: string): never => {
    throw new ConfigError(`${source}: ${spec.flag} ${what} (got ${JSON.stringify(raw)})`);
  };
  switch (spec.kind) {
    case "string":
      return text.length > 0 ? text : fail("must not be empty");
    case "port": {
      const port = Number(text);
      return Number.isInteger(port) && port >= 0 && port <= 65535
        ? port
        : fail("must be a port number 0–65535");
    }
    case "bytes": {
      const bytes = Number(text);
      return Number.isInteger(bytes) && bytes >= 1024 * 1024 && bytes < 4 * 1024 ** 3
        ? bytes
        : fail("must be a whole number of bytes between 1 MiB and 4 GiB");
    }
    case "count": {
      const count = Number(text);
      return Number.isSafeInteger(count) && count >= 1 ? count : fail("must be a whole number ≥ 1");
    }
    case "seconds": {
      const seconds = Number(text);
      return Number.isFinite(seconds) && seconds >= 0 && seconds <= 86_400
        ? seconds
        : fail("must be a number of seconds between 0 and 86400");
    }
    case "boolean":
      if (text === "true" || text === "1") return true;
      if (text === "false" || text === "0") return false;
      return fail("must be true or false");
    case "level":
      return LEVELS.has(text)
        ? text
        : fail("must be one of fatal, error, warn, info, debug, trace, silent");
  }
}

/**
 * The effective configuration. `flags` are parsed command-line options by
 * flag name; `configFile` a JSON file whose keys are the flag names.
 */
export function loadServerConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  configFile?: string,
): ServerConfig {
  const fromFile = configFile === undefined ? {} : readConfigFile(configFile);
  const config: Record<string, string | number | boolean> = { ...DEFAULT_CONFIG };
  for (const spec of SERVER_OPTIONS) {
    const layers: [unknown, string][] = [
      [flags[spec.flag], `--${spec.flag}`],
      [env[spec.env], spec.env],
      [fromFile[spec.flag], configFile ?? ""],
    ];
    const found = layers.find(([value]) => value !== undefined && value !== "");
    if (found !== undefined) config[spec.key] = parseValue(spec, found[0], found[1]);
  }
  const result = config as unknown as ServerConfig;
  if ((result.tlsCert === "") !== (result.tlsKey === "")) {
    throw new ConfigError("tls-cert and tls-key go together: give both or neither");
  }
  if (result.tlsClientCa !== "" && result.tlsCert === "") {
    throw new ConfigError("tls-client-ca needs tls-cert and tls-key");
  }
  return { ...result, dataDir: resolve(result.dataDir) };
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read the config file ${path}: ${(error as Error).message}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(
      `the config file ${path} is not a JSON object: ${(error as Error).message}`,
    );
  }
}
