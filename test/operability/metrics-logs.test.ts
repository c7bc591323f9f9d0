/**
 * Prometheus metrics after a known workload (the counters match it), and
 * logs that never carry a secret, whatever the door and the outcome.
 */
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createServerLogger } from "../../src/logger.js";
import {
  createActor,
  startServerWithExtras,
  testAdminToken,
} from "../helpers/identity-fixtures.js";
import { type TestServer, startTestServer } from "../helpers/test-server.js";

/** One sample of the exposition format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1] as string] = pair[2] as string;
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(server: TestServer): Promise<Sample[]> {
  const response = await fetch(`${server.server.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return parseExposition(await response.text());
}

function openWs(server: TestServer): Promise<{ ws: WebSocket; next(): Promise<string> }> {
  const ws = new WebSocket(server.server.url.replace(/^http/, "ws"));
  const inbox: string[] = [];
  const waiting: ((text: string) => void)[] = [];
  ws.on("message", (data: Buffer) => {
    const resolve = waiting.shift();
    if (resolve === undefined) inbox.push(data.toString());
    else resolve(data.toString());
  });
  const next = (): Promise<string> => {
    const ready = inbox.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no frame within 5 s")), 5_000);
      waiting.push((text) => {
        clearTimeout(timer);
        resolve(text);
      });
    });
  };
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ ws, next }));
    ws.once("error", reject);
  });
}

describe("metrics", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("count RPCs by method and code, bridge messages by type and result, and open connections", async () => {
    const client = server.connectClient("connect", "2", { binary: true });
    await client.createTenant({ tenantId: "m" });
    await client.createService({ tenantId: "m", serviceName: "s" });
    await client.allocateVariable({
      tenantId: "m",
      serviceName: "s",
      variableName: "v",
      initialData: new Uint8Array([1]),
    });
    const before = await scrape(server);
    const read = { tenantId: "m", serviceName: "s", variableName: "v" };
    for (let i = 0; i < 7; i++) await client.readVariable(read);
    for (let i = 0; i < 3; i++) {
      await expect(client.readVariable({ ...read, variableName: "missing" })).rejects.toThrow();
    }
    const { ws, next } = await openWs(server);
    ws.send(
      JSON.stringify({
        type: "Authenticate",
        data: { tenant_id: "m", method: "api_key", key: testAdminToken(), request_id: "a" },
      }),
    );
    await next();
    ws.send(JSON.stringify({ type: "Heartbeat", data: {} }));
    await next();
    ws.send("not json");
    await next();
    const after = await scrape(server);
    const read7 = { method: "/commy.v1.CommyService/ReadVariable" };
    const delta = (name: string, labels: Record<string, string>) =>
      value(after, name, labels) - value(before, name, labels);
    expect(delta("commy_rpc_handled_total", { ...read7, code: "ok" })).toBe(7);
    expect(delta("commy_rpc_handled_total", { ...read7, code: "not_found" })).toBe(3);
    expect(delta("commy_rpc_duration_seconds_count", read7)).toBe(10);
    expect(delta("commy_bridge_messages_total", { type: "Authenticate", result: "ok" })).toBe(1);
    expect(delta("commy_bridge_messages_total", { type: "Heartbeat", result: "ok" })).toBe(1);
    expect(delta("commy_bridge_messages_total", { result: "INVALID_REQUEST" })).toBe(1);
    expect(value(after, "commy_bridge_connections", { mode: "extended" })).toBe(1);
    expect(value(after, "commy_open_connections", { transport: "websocket" })).toBe(1);
    expect(value(after, "commy_open_connections", { transport: "http2" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(value(after, "commy_service_files_mapped_bytes")).toBeGreaterThan(0);
    expect(value(after, "commy_process_resident_memory_bytes")).toBeGreaterThan(0);
    ws.close();
  });

  it("count audit events by action and outcome, and service-file growths", async () => {
    const client = server.connectClient("connect", "2", { binary: true });
    const before = await scrape(server);
    await client.createTenant({ tenantId: "audited" });
    await client.createService({ tenantId: "audited", serviceName: "big" });
    const anonymous = server.connectClient("connect", "2", { credentials: "none" });
    await expect(anonymous.getTenant({ tenantId: "audited" })).rejects.toThrow();
    // A new file starts at 256 KiB: a 1 MiB value makes it grow.
    await client.allocateVariable({
      tenantId: "audited",
      serviceName: "big",
      variableName: "v",
      initialData: new Uint8Array(1024 * 1024),
    });
    const after = await scrape(server);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      value(after, name, labels) - value(before, name, labels);
    expect(delta("commy_audit_events_total", { action: "tenant.create", outcome: "ok" })).toBe(1);
    expect(delta("commy_audit_events_total", { action: "service.create", outcome: "ok" })).toBe(1);
    expect(delta("commy_audit_events_total", { outcome: "denied" })).toBe(1);
    expect(delta("commy_service_file_growths_total")).toBeGreaterThanOrEqual(1);
  });
});

describe("metrics off", () => {
  it("/metrics is 404 when metrics are turned off", async () => {
    const server = await startTestServer({ config: { metrics: false } });
    try {
      expect((await fetch(`${server.server.url}/metrics`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe("logs", () => {
  it("carry no token, key or password, at the most verbose level, whatever happens", async () => {
    let logged = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged += chunk.toString();
        done();
      },
    });
    const server = await startServerWithExtras({ logger: createServerLogger("trace", sink) });
    const password = "correct-horse-battery-staple-42";
    try {
      const admin = server.connectClient("connect", "1.1");
      await admin.createTenant({ tenantId: "secrets" });
      const actor = await createActor(server, "secrets", "alice", [], password);
      const identity = server.identityClient("none");
      const session = await identity.authenticate({
        tenantId: "secrets",
        credential: { case: "apiKey", value: actor.apiKey },
      });
      await expect(
        identity.authenticate({
          tenantId: "secrets",
          credential: { case: "password", value: { username: "alice", password: `${password}x` } },
        }),
      ).rejects.toThrow();
      const { ws, next } = await openWs(server);
      const frames = [
        {
          type: "Authenticate",
          data: { tenant_id: "secrets", method: "api_key", key: actor.apiKey },
        },
        {
          type: "Authenticate",
          data: { tenant_id: "secrets", method: "basic", username: "alice", password },
        },
      ];
      for (const frame of frames) {
        ws.send(JSON.stringify(frame));
        await next();
      }
      // Malformed on purpose: JSON errors quote their input.
      ws.send(`{"type":"Authenticate","data":{"method":"basic","password":"${password}"`);
      await next();
      ws.close();
      expect(logged.length).toBeGreaterThan(0);
      for (const secret of [password, actor.apiKey, session.token, testAdminToken()]) {
        expect(logged).not.toContain(secret);
      }
    } finally {
      await server.close();
    }
  });

  it("redacts secret fields wherever a log object carries them", () => {
    let logged = "";
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged += chunk.toString();
        done();
      },
    });
    const log = createServerLogger("info", sink);
    log.info(
      {
        password: "pw-5e1f",
        token: "tok-7c2a",
        request: { authorization: "Bearer bearer-9d3b", key: "key-1a4e" },
      },
      "x",
    );
    for (const secret of ["pw-5e1f", "tok-7c2a", "bearer-9d3b", "key-1a4e"]) {
      expect(logged).not.toContain(secret);
    }
    expect(logged).toContain("[redacted]");
  });
});
