/**
 * The bridge's transport rules (legacy-ws-protocol.md §1 and §4.7): a
 * binary frame closes with 1003 and a reason; a frame over the size limit
 * closes with 1009; an idle connection is closed; the server pings and cuts
 * a peer that does not answer; connections over the limit are refused with
 * HTTP 503 while the others keep working; Disconnect closes with 1000; and
 * nothing one connection sends affects its neighbours. Limits are set
 * small through the server's configuration (ws-* options).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  LegacyWs,
  authenticate,
  expectError,
  expectShape,
  startBridgeServer,
} from "../helpers/legacy-ws.js";

/** Opens a connection and expects the upgrade to be refused; returns the error's text. */
async function refusedUpgrade(url: string): Promise<string> {
  return LegacyWs.open(url, {}, "refused").then(
    async (client) => {
      await client.close();
      throw new Error("the upgrade was accepted");
    },
    (error: Error) => error.message,
  );
}

describe("frames and sizes", () => {
  const MAX = 4096;
  let test: BridgeTestServer;
  let serviceId: string;

  beforeAll(async () => {
    test = await startBridgeServer({ config: { wsMaxMessageBytes: MAX } });
    const admin = test.connectClient("connect", "1.1");
    await admin.createTenant({ tenantId: "t" });
    serviceId =
      (await admin.createService({ tenantId: "t", serviceName: "s" })).service?.serviceId ?? "";
    await admin.allocateVariable({
      tenantId: "t",
      serviceName: "s",
      variableName: "v",
      initialData: new Uint8Array([1]),
    });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("closes with 1003 and a reason on a binary frame", async () => {
    const client = await LegacyWs.open(test.wsUrl(), {}, "binary");
    client.sendBinary(new Uint8Array([0x81, 0xa4, 0x74, 0x79, 0x70, 0x65]));
    const closed = await client.closed();
    expect(closed.code).toBe(1003);
    expect(closed.reason).not.toBe("");
    expect(client.received).toEqual([]);
  });

  it("closes with 1009 on a message over ws-max-message-bytes, and takes one within it", async () => {
    const within = await LegacyWs.open(test.wsUrl(), {}, "within");
    const padding = "x".repeat(MAX - 200);
    const reply = await within.request({ type: "Heartbeat", data: { client_id: padding } });
    expectShape(reply, "Heartbeat");
    await within.close();

    const over = await LegacyWs.open(test.wsUrl(), {}, "over");
    over.send({ type: "Heartbeat", data: { client_id: "x".repeat(MAX + 1) } });
    expect((await over.closed()).code).toBe(1009);
    expect(over.received).toEqual([]);
  });

  it("closes with 1000 after Disconnect, without a reply", async () => {
    const client = await LegacyWs.open(test.wsUrl(), {}, "disconnect");
    client.send({ type: "Disconnect", data: { client_id: "c" } });
    expect((await client.closed()).code).toBe(1000);
    expect(client.received).toEqual([]);
  });

  it("never lets one connection's bad input affect a neighbour", async () => {
    const neighbour = await LegacyWs.open(test.wsUrl(), {}, "neighbour");
    await authenticate(neighbour, "t", testAdminToken());
    neighbour.send({
      type: "Subscribe",
      data: { service_id: serviceId, variable_name: "v", request_id: "s" },
    });
    expect(expectShape(await neighbour.replyTo("s"), "Result", { requestId: "s" }).success).toBe(
      true,
    );
    // From here on the neighbour is in extended mode: replies are found by request_id.
    await neighbour.until(
      () => neighbour.received.find((f) => f.type === "VariableChanged" && f.data.version === 1),
      "the snapshot",
    );

    // Bad input of every kind, each on a connection of its own.
    const garbage = await LegacyWs.open(test.wsUrl(), {}, "garbage");
    for (const frame of ["{", "null", '{"type":"X"}', "\u0000\u0001", "[".repeat(1000)]) {
      garbage.sendText(frame);
      expectError(await garbage.next(), "INVALID_REQUEST");
    }
    const binary = await LegacyWs.open(test.wsUrl(), {}, "binary");
    binary.sendBinary(new Uint8Array(16));
    const oversize = await LegacyWs.open(test.wsUrl(), {}, "oversize");
    oversize.sendText("y".repeat(MAX * 2));
    const dropped = await LegacyWs.open(test.wsUrl(), {}, "dropped");
    dropped.sendText('{"type":"ReadVariable","data":{');
    dropped.terminate();
    expect((await binary.closed()).code).toBe(1003);
    expect((await oversize.closed()).code).toBe(1009);
    await garbage.close();

    // The neighbour is served as before, its subscription included.
    neighbour.send({ type: "Heartbeat", data: { client_id: "n", request_id: "h" } });
    expectShape(await neighbour.replyTo("h"), "Heartbeat", { requestId: "h" });
    neighbour.send({
      type: "ReadVariable",
      data: { service_id: serviceId, variable_name: "v", request_id: "r" },
    });
    const read = expectShape(await neighbour.replyTo("r"), "VariableData", { requestId: "r" });
    expect(read.data).toEqual([1]);
    neighbour.send({
      type: "WriteVariable",
      data: { service_id: serviceId, variable_name: "v", data: [2], request_id: "w" },
    });
    expect(expectShape(await neighbour.replyTo("w"), "Result", { requestId: "w" }).success).toBe(
      true,
    );
    const push = await neighbour.until(
      () => neighbour.received.find((f) => f.type === "VariableChanged" && f.data.version === 2),
      "the push of version 2",
    );
    expect(push.data.data).toEqual([2]);
    await neighbour.close();
  });
});

describe("idle timeout", () => {
  let test: BridgeTestServer;

  beforeAll(async () => {
    test = await startBridgeServer({ config: { wsIdleTimeout: 0.3, wsPingInterval: 0 } });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("closes a connection that sends nothing", async () => {
    const idle = await LegacyWs.open(test.wsUrl(), {}, "idle");
    const openedAt = Date.now();
    const closed = await idle.closed(5_000);
    expect(closed.code).not.toBe(1006);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(250);
    expect(idle.received).toEqual([]);
  });

  it("keeps a connection that sends heartbeats, then closes it once it stops", async () => {
    // The clock is a second connection opened at the same time that stays
    // silent: once the server has closed it for idleness, the busy one,
    // which kept sending, must still be open.
    const idle = await LegacyWs.open(test.wsUrl(), {}, "clock");
    const busy = await LegacyWs.open(test.wsUrl(), {}, "busy");
    let heartbeats = 0;
    // Bounded: a heartbeat round trip takes well under a millisecond here.
    while (!idle.isClosed && heartbeats < 100_000) {
      expectShape(await busy.request({ type: "Heartbeat", data: { client_id: "b" } }), "Heartbeat");
      heartbeats++;
    }
    expect(idle.isClosed).toBe(true);
    expect(busy.isClosed).toBe(false);
    expect((await busy.closed(5_000)).code).not.toBe(1006);
  });
});

describe("WebSocket ping", () => {
  let test: BridgeTestServer;

  beforeAll(async () => {
    test = await startBridgeServer({ config: { wsPingInterval: 0.2 } });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("pings, keeps a peer that answers and cuts one that does not", async () => {
    const answering = await LegacyWs.open(test.wsUrl(), {}, "answering");
    const silent = await LegacyWs.open(test.wsUrl(), { autoPong: false }, "silent");
    await answering.until(() => (answering.counters.pings >= 3 ? true : undefined), "three pings");
    // The silent peer was pinged, did not answer and was cut before the next ping or so.
    const cut = await silent.closed(5_000);
    expect(silent.counters.pings).toBeGreaterThanOrEqual(1);
    expect(cut.code).toBe(1006);
    expect(answering.isClosed).toBe(false);
    expectShape(
      await answering.request({ type: "Heartbeat", data: { client_id: "a" } }),
      "Heartbeat",
    );
    await answering.close();
  });
});

describe("connection limit", () => {
  let test: BridgeTestServer;

  beforeAll(async () => {
    test = await startBridgeServer({ config: { wsMaxConnections: 2 } });
  });

  afterAll(async () => {
    await test?.close();
  });

  it("refuses a third upgrade with HTTP 503 while the two others keep working", async () => {
    const first = await LegacyWs.open(test.wsUrl(), {}, "first");
    const second = await LegacyWs.open(test.wsUrl("/other"), {}, "second");
    expect(await refusedUpgrade(test.wsUrl())).toMatch(/503/);
    for (const client of [first, second]) {
      expectShape(
        await client.request({ type: "Heartbeat", data: { client_id: "x" } }),
        "Heartbeat",
      );
    }
    // A closed connection frees its place (the server notices the close a moment later).
    await first.close();
    let third: LegacyWs | undefined;
    for (let attempt = 0; attempt < 50 && third === undefined; attempt++) {
      third = await LegacyWs.open(test.wsUrl(), {}, "third").catch(async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return undefined;
      });
    }
    expect(third).toBeDefined();
    expectShape(
      await (third as LegacyWs).request({ type: "Heartbeat", data: { client_id: "y" } }),
      "Heartbeat",
    );
    expect(await refusedUpgrade(test.wsUrl())).toMatch(/503/);
    await second.close();
    await third?.close();
  });
});
