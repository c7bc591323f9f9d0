/**
 * What the client tests (test/client) share: CommyClients of a test server
 * (the admin's, or a principal's), bounded reads of a subscription, and
 * the check that a series of changes lost no version.
 */
import { expect } from "vitest";
import {
  type CommyClient,
  type CommyClientOptions,
  type VariableChange,
  createCommyClient,
} from "../../src/client/index.js";
import { testAdminToken } from "../helpers/identity-fixtures.js";

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
export const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** Makes CommyClients and closes them all at once. */
export interface ClientPool {
  /** A client of `baseUrl` calling as the server admin unless `token` says otherwise. */
  client(baseUrl: string, options?: Partial<CommyClientOptions>): CommyClient;
  closeAll(): void;
}

export function createClientPool(): ClientPool {
  const clients: CommyClient[] = [];
  return {
    client: (baseUrl, options = {}) => {
      const client = createCommyClient({ baseUrl, token: testAdminToken(), ...options });
      clients.push(client);
      return client;
    },
    closeAll: () => {
      for (const client of clients.splice(0)) client.close();
    },
  };
}

/**
 * Reads changes from `changes` until one satisfies `done` (inclusive);
 * fails after `timeoutMs` without it.
 */
export async function takeUntil(
  changes: AsyncIterator<VariableChange>,
  done: (change: VariableChange) => boolean,
  timeoutMs = 10_000,
): Promise<VariableChange[]> {
  const taken: VariableChange[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no awaited change in time; got ${describe(taken)}`)),
        Math.max(1, deadline - Date.now()),
      );
    });
    try {
      const next = await Promise.race([changes.next(), timeout]);
      if (next.done === true) throw new Error(`the subscription ended; got ${describe(taken)}`);
      taken.push(next.value);
      if (done(next.value)) return taken;
    } finally {
      clearTimeout(timer);
    }
  }
}

function describe(changes: readonly VariableChange[]): string {
  return JSON.stringify(changes.map((c) => [c.variableName, c.version, c.skipped, c.kind]));
}

/**
 * Fails unless `changes` of one variable account for every version after
 * `lastSeen`: each one is the previous plus its `skipped` plus one, so
 * nothing was lost and nothing came twice.
 */
export function expectNoLostVersions(changes: readonly VariableChange[], lastSeen: number): void {
  let previous = lastSeen;
  for (const change of changes) {
    expect(change.version, `version after ${previous}`).toBe(previous + change.skipped + 1);
    previous = change.version;
  }
}
