/**
 * The trace of legacy-ws-protocol.md §4.8 as a reusable check (plain and
 * TLS runs): sends exactly the SDK's messages and checks each reply's shape
 * and values; fails on the first difference.
 */
import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { type LegacyWs, expectShape } from "../helpers/legacy-ws.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** What the trace learnt on the way. */
export interface TraceOutcome {
  serviceId: string;
  permissions: string[];
}

/**
 * Runs the trace on an open connection as tenant `tenantId` with `key`;
 * the connection is closed by the server at the end (Disconnect → 1000).
 */
export async function runSdkTrace(
  client: LegacyWs,
  tenantId: string,
  key: string,
): Promise<TraceOutcome> {
  const clientId = randomUUID();
  const auth = expectShape(
    await client.request({
      type: "Authenticate",
      data: { tenant_id: tenantId, client_version: "0.1.0", method: "api_key", key },
    }),
    "AuthenticationResult",
  );
  expect(auth.success).toBe(true);
  expect(auth.permissions).toBeInstanceOf(Array);

  const created = expectShape(
    await client.request({
      type: "CreateService",
      data: { tenant_id: tenantId, service_name: "config" },
    }),
    "Service",
  );
  expect(created).toMatchObject({ service_name: "config", tenant_id: tenantId });
  const serviceId = created.service_id as string;
  expect(serviceId).toMatch(UUID);

  const got = expectShape(
    await client.request({
      type: "GetService",
      data: { tenant_id: tenantId, service_name: "config" },
    }),
    "Service",
  );
  expect(got).toMatchObject({ service_id: serviceId, service_name: "config", tenant_id: tenantId });

  client.send({
    type: "WriteVariable",
    data: { service_id: serviceId, variable_name: "x", data: [1, 2] },
  });

  const read = expectShape(
    await client.request({
      type: "ReadVariable",
      data: { service_id: serviceId, variable_name: "x" },
    }),
    "VariableData",
  );
  expect(read).toEqual({ service_id: serviceId, variable_name: "x", data: [1, 2], version: 1 });

  const beat = expectShape(
    await client.request({ type: "Heartbeat", data: { client_id: clientId } }),
    "Heartbeat",
  );
  expect(Math.abs(Date.parse(beat.timestamp as string) - Date.now())).toBeLessThan(60_000);

  const deleted = expectShape(
    await client.request({
      type: "DeleteService",
      data: { tenant_id: tenantId, service_name: "config" },
    }),
    "Result",
  );
  expect(deleted.success).toBe(true);

  client.send({ type: "Disconnect", data: { client_id: clientId } });
  const closed = await client.closed();
  expect(closed.code).toBe(1000);
  // Nothing came after the DeleteService reply: no reply to the Disconnect.
  expect(client.pending.map((f) => f.raw)).toEqual([]);
  return { serviceId, permissions: auth.permissions as string[] };
}
