/**
 * Shutdown: server.close() with bridge connections open (unauthenticated,
 * legacy, extended with a subscription) closes each of them with 1001
 * ("going away") and a reason, and resolves promptly; afterwards the port
 * takes no upgrade.
 */
import { describe, expect, it } from "vitest";
import { testAdminToken } from "../helpers/identity-fixtures.js";
import { LegacyWs, authenticate, expectShape, startBridgeServer } from "../helpers/legacy-ws.js";

describe("server.close()", () => {
  it("closes every bridge connection with 1001 and resolves", async () => {
    const test = await startBridgeServer();
    try {
      const admin = test.connectClient("connect", "1.1");
      await admin.createTenant({ tenantId: "t" });
      const { service } = await admin.createService({ tenantId: "t", serviceName: "s" });
      await admin.allocateVariable({
        tenantId: "t",
        serviceName: "s",
        variableName: "v",
        initialData: new Uint8Array([1]),
      });
      const anonymous = await LegacyWs.open(test.wsUrl(), {}, "anonymous");
      const legacy = await LegacyWs.open(test.wsUrl(), {}, "legacy");
      await authenticate(legacy, "t", testAdminToken());
      legacy.send({
        type: "Subscribe",
        data: { service_id: service?.serviceId, variable_name: "v" },
      });
      const extended = await LegacyWs.open(test.wsUrl("/x"), {}, "extended");
      await authenticate(extended, "t", testAdminToken());
      extended.send({
        type: "Subscribe",
        data: { service_id: service?.serviceId, variable_name: "v", request_id: "s" },
      });
      expectShape(await extended.replyTo("s"), "Result", { requestId: "s" });
      await legacy.expectNothing("a legacy Subscribe");

      const startedAt = Date.now();
      await test.server.close();
      expect(Date.now() - startedAt).toBeLessThan(3_000);
      for (const client of [anonymous, legacy, extended]) {
        const closed = await client.closed(1_000);
        expect(closed.code, client.label).toBe(1001);
        expect(closed.reason, client.label).not.toBe("");
      }
      await expect(LegacyWs.open(test.wsUrl(), { handshakeTimeout: 2_000 })).rejects.toThrow();
    } finally {
      await test.close();
    }
  });
});
