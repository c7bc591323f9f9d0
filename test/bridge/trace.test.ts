/**
 * The legacy SDK's basic example (legacy-ws-protocol.md §4.8), unchanged:
 * a real API key of a real tenant, every message as the SDK sends it, every
 * reply of the type, field names, field types and codes the SDK parses;
 * the WriteVariable and the Disconnect get no reply; the first write makes
 * version 1. The trace works on any upgrade path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createActor } from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  LegacyWs,
  expectShape,
  startBridgeServer,
} from "../helpers/legacy-ws.js";
import { runSdkTrace } from "./sdk-trace.js";

let test: BridgeTestServer;

beforeAll(async () => {
  test = await startBridgeServer();
});

afterAll(async () => {
  await test?.close();
});

describe("the SDK's basic example", () => {
  it("runs unchanged with an API key my_tenant really has", async () => {
    await test.connectClient("connect", "1.1").createTenant({ tenantId: "my_tenant" });
    const actor = await createActor(test, "my_tenant", "sdk", [{ permission: "tenant:admin" }]);
    const client = await LegacyWs.open(test.wsUrl());
    const trace = await runSdkTrace(client, "my_tenant", actor.apiKey);
    expect(trace.permissions).toEqual(["admin"]);
    // The service is really gone, as DeleteService said.
    const again = await LegacyWs.open(test.wsUrl(), {}, "again");
    const auth = await again.request({
      type: "Authenticate",
      data: {
        tenant_id: "my_tenant",
        client_version: "0.1.0",
        method: "api_key",
        key: actor.apiKey,
      },
    });
    expect(expectShape(auth, "AuthenticationResult").success).toBe(true);
    const gone = await again.request({
      type: "GetService",
      data: { tenant_id: "my_tenant", service_name: "config" },
    });
    expect(expectShape(gone, "Error").code).toBe("NOT_FOUND");
    await again.close();
  });

  it.each(["/", "/ws", "/commy/v1/legacy?x=1", "/anything/at/all"])(
    "works on the upgrade path %s",
    async (path) => {
      const tenantId = `path${path.replace(/[^a-z0-9]/g, "") || "root"}`;
      await test.connectClient("connect", "1.1").createTenant({ tenantId });
      const actor = await createActor(test, tenantId, "sdk", [{ permission: "tenant:admin" }]);
      const client = await LegacyWs.open(test.wsUrl(path));
      await runSdkTrace(client, tenantId, actor.apiKey);
    },
  );
});
