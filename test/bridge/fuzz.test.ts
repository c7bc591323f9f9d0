/**
 * Fuzzing the bridge (bounded: a few hundred frames, a few seconds): random
 * text, random JSON and mutations of every valid client message. The server
 * never crashes or hangs, answers exactly one message to each frame that
 * expects one and none to the others (legacy-ws-protocol.md §4.1: counted by
 * following each frame with a Heartbeat probe), and still serves another
 * connection afterwards. Pushes (VariableChanged, from subscriptions that
 * fuzzed frames may open) are not answers and are not counted.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createActor } from "../helpers/identity-fixtures.js";
import {
  type BridgeTestServer,
  LegacyWs,
  type ServerFrame,
  authenticate,
  expectShape,
  isPlainObject,
  shapeProblems,
  startBridgeServer,
} from "../helpers/legacy-ws.js";

const KNOWN_TYPES = [
  "Authenticate",
  "CreateTenant",
  "DeleteTenant",
  "CreateService",
  "GetService",
  "DeleteService",
  "AllocateVariable",
  "ReadVariable",
  "WriteVariable",
  "DeallocateVariable",
  "Subscribe",
  "Unsubscribe",
  "Heartbeat",
  "Disconnect",
  "GetServiceFilePath",
  "ReportVariableChanges",
];
const UNANSWERED = new Set(["WriteVariable", "Subscribe", "Unsubscribe", "Disconnect"]);

let test: BridgeTestServer;
let apiKey: string;
let serviceId: string;
let probes = 0;

beforeAll(async () => {
  test = await startBridgeServer();
  const admin = test.connectClient("connect", "1.1");
  await admin.createTenant({ tenantId: "fz" });
  apiKey = (await createActor(test, "fz", "fuzzer", [{ permission: "tenant:admin" }])).apiKey;
  serviceId =
    (await admin.createService({ tenantId: "fz", serviceName: "cfg" })).service?.serviceId ?? "";
});

afterAll(async () => {
  await test?.close();
});

/** A valid message of every type, as the SDK would send it. */
function templates(): { type: string; data: Record<string, unknown> }[] {
  const variable = { service_id: serviceId, variable_name: "v" };
  const service = { tenant_id: "fz", service_name: "cfg" };
  return [
    {
      type: "Authenticate",
      data: { tenant_id: "fz", client_version: "0.1.0", method: "api_key", key: apiKey },
    },
    { type: "CreateTenant", data: { tenant_id: "fz2", tenant_name: "x" } },
    { type: "DeleteTenant", data: { tenant_id: "fz2" } },
    { type: "CreateService", data: service },
    { type: "GetService", data: service },
    { type: "DeleteService", data: { tenant_id: "fz", service_name: "other" } },
    { type: "AllocateVariable", data: { ...variable, initial_data: [1, 2] } },
    { type: "ReadVariable", data: variable },
    { type: "WriteVariable", data: { ...variable, data: [3, 4] } },
    { type: "DeallocateVariable", data: { ...variable, variable_name: "gone" } },
    { type: "Subscribe", data: variable },
    { type: "Unsubscribe", data: variable },
    { type: "Heartbeat", data: { client_id: "c" } },
    { type: "Disconnect", data: { client_id: "c" } },
    { type: "GetServiceFilePath", data: service },
    {
      type: "ReportVariableChanges",
      data: { service_id: serviceId, changed_variables: ["v"], new_values: [["v", [5]]] },
    },
  ];
}

/** One fuzzed frame: random text, random JSON, or a mutated valid message. */
function frames(): fc.Arbitrary<string> {
  const template = fc.constantFrom(...templates());
  const byteish = fc.array(fc.oneof(fc.integer({ min: -3, max: 300 }), fc.double(), fc.string()), {
    maxLength: 6,
  });
  const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 2 }), byteish);
  const mutated = fc
    .tuple(
      template,
      fc.constantFrom("asIs", "dropKey", "retypeField", "requestId", "retype", "rewriteData"),
      fc.nat(),
      anyValue,
      fc.oneof(fc.constantFrom(...KNOWN_TYPES), fc.string({ maxLength: 12 })),
    )
    .map(([{ type, data }, mutation, index, value, otherType]) => {
      const keys = Object.keys(data);
      const key = keys[index % Math.max(keys.length, 1)] ?? "x";
      const copy: Record<string, unknown> = { ...data };
      switch (mutation) {
        case "asIs":
          return { type, data };
        case "dropKey":
          return {
            type,
            data: Object.fromEntries(Object.entries(data).filter(([k]) => k !== key)),
          };
        case "retypeField":
          copy[key] = value;
          return { type, data: copy };
        case "requestId":
          return { type, data: { ...data, request_id: value } };
        case "retype":
          return { type: otherType, data };
        default:
          return { type, data: value };
      }
    })
    .map((message) => JSON.stringify(message));
  const truncated = fc.tuple(template, fc.nat()).map(([message, cut]) => {
    const text = JSON.stringify(message);
    return text.slice(0, cut % text.length);
  });
  return fc.oneof(
    { arbitrary: mutated, weight: 6 },
    { arbitrary: truncated, weight: 1 },
    { arbitrary: fc.json({ maxDepth: 3 }), weight: 1 },
    { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
  );
}

/** How many answers a frame must get (§4.1, §4.3, §4.7). */
function expectedAnswers(text: string): 0 | 1 {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return 1;
  }
  if (!isPlainObject(parsed)) return 1;
  const data = parsed.data ?? {};
  const requestId = isPlainObject(data) ? data.request_id : undefined;
  if (requestId !== undefined && requestId !== null) return 1;
  if (typeof parsed.type !== "string" || !KNOWN_TYPES.includes(parsed.type)) return 1;
  return UNANSWERED.has(parsed.type) ? 0 : 1;
}

/** The request_id a frame carries (a string in data), which its answer must echo. */
function requestIdOf(text: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    if (!isPlainObject(parsed) || !isPlainObject(parsed.data)) return undefined;
    const requestId = parsed.data.request_id;
    return typeof requestId === "string" ? requestId : undefined;
  } catch {
    return undefined;
  }
}

/** A frame is a Disconnect the server acts on (it then closes the connection). */
function isDisconnect(text: string): boolean {
  try {
    const parsed: unknown = JSON.parse(text);
    return isPlainObject(parsed) && parsed.type === "Disconnect";
  } catch {
    return false;
  }
}

/** Sends an extended-mode Heartbeat and returns the answers that came before its reply. */
async function answersBeforeProbe(client: LegacyWs, from: number): Promise<ServerFrame[]> {
  const requestId = `__probe_${++probes}_${Math.random()}`;
  client.send({ type: "Heartbeat", data: { client_id: "probe", request_id: requestId } });
  const probe = await client.replyTo(requestId);
  const index = client.received.indexOf(probe);
  return client.received.slice(from, index).filter((f) => f.type !== "VariableChanged");
}

async function connection(label: string): Promise<LegacyWs> {
  const client = await LegacyWs.open(test.wsUrl(), {}, label);
  await authenticate(client, "fz", apiKey);
  return client;
}

describe("fuzzed frames", () => {
  it("get exactly one answer each when one is expected, and none otherwise", async () => {
    let client = await connection("fuzz");
    let cases = 0;
    await fc.assert(
      fc.asyncProperty(frames(), async (text) => {
        cases++;
        const from = client.received.length;
        client.sendText(text);
        if (isDisconnect(text) && expectedAnswers(text) === 0) {
          // A legacy Disconnect: nothing back, and the connection may close (when it was valid).
          const outcome = await Promise.race([
            client.closed(1_000).then(() => "closed"),
            answersBeforeProbe(client, from).then((answers) => answers),
          ]);
          if (outcome === "closed") {
            expect(client.received.slice(from).filter((f) => f.type !== "VariableChanged")).toEqual(
              [],
            );
            client = await connection("fuzz (reconnected)");
            return;
          }
          expect(outcome).toEqual([]);
          return;
        }
        if (isDisconnect(text)) {
          // An extended Disconnect: its answer, then the close.
          const answer = await client.next("the Disconnect answer").catch(() => undefined);
          if (
            client.isClosed ||
            (await client.closed(1_000).then(
              () => true,
              () => false,
            ))
          ) {
            expect(answer === undefined ? [] : [answer]).toHaveLength(expectedAnswers(text));
            client = await connection("fuzz (reconnected)");
            return;
          }
        }
        const answers = await answersBeforeProbe(client, from);
        expect(
          answers.map((a) => a.raw),
          `answers to ${text}`,
        ).toHaveLength(expectedAnswers(text));
        for (const answer of answers) {
          expect(shapeProblems(answer, { requestId: requestIdOf(text) }), answer.raw).toEqual([]);
        }
      }),
      { numRuns: 300, interruptAfterTimeLimit: 12_000, markInterruptAsFailure: true },
    );
    expect(cases).toBeGreaterThanOrEqual(300);
    await client.close();
  });

  it("answers a pipelined burst completely, in order", async () => {
    const client = await connection("burst");
    const burst = fc
      .sample(frames(), { numRuns: 200, seed: 4242 })
      .filter((text) => !isDisconnect(text));
    const answered = burst.filter((text) => expectedAnswers(text) === 1);
    const from = client.received.length;
    for (const text of burst) client.sendText(text);
    const answers = await answersBeforeProbe(client, from);
    expect(answers).toHaveLength(answered.length);
    // In order: each answer echoes the request_id (or none) of the frame it answers.
    answers.forEach((answer, i) => {
      const frame = answered[i] as string;
      expect(
        shapeProblems(answer, { requestId: requestIdOf(frame) }),
        `${frame} → ${answer.raw}`,
      ).toEqual([]);
      if (requestIdOf(frame) === undefined)
        expect("request_id" in answer.data && answer.type !== "Result").toBe(false);
    });
    await client.close();
  });

  it("leaves the server serving other connections and Connect", async () => {
    const other = await connection("afterwards");
    const reply = await other.request({
      type: "GetService",
      data: { tenant_id: "fz", service_name: "cfg" },
    });
    if (reply.type === "Service") expect(reply.data.service_id).toEqual(expect.any(String));
    else expect(reply.data.code).toBe("NOT_FOUND");
    expectShape(await other.request({ type: "Heartbeat", data: { client_id: "x" } }), "Heartbeat");
    await other.close();
    const { tenant } = await test.connectClient("connect", "1.1").getTenant({ tenantId: "fz" });
    expect(tenant?.tenantId).toBe("fz");
  });
});
