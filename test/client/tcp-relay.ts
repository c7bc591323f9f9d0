/**
 * A TCP relay on loopback between a client under test and a Commy server,
 * so that a test can do to the connection what the network does: cut it,
 * refuse it, point it at a restarted server, or swallow it (accept and
 * never answer). Every wait is bounded and waits on an event.
 */
import { type Server, type Socket, createServer, connect } from "node:net";

/** What the relay does with a new connection. */
export type RelayMode =
  /** Pipe it to the target server (refused when there is none). */
  | "forward"
  /** Accept it and never send a byte back: calls hang until their timeout. */
  | "stall";

export interface TcpRelay {
  /** http://127.0.0.1:<relay port> */
  readonly url: string;
  /** The port of the server connections are piped to; undefined refuses them. */
  target: number | undefined;
  mode: RelayMode;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Destroys the next `count` connections as soon as they are accepted. */
  resetNext(count: number): void;
  /** Destroys every open connection (both sides), as a network failure would. */
  cutConnections(): void;
  /** Resolves once `count` connections were accepted in all (bounded). */
  waitForAccepted(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A relay listening on an ephemeral loopback port, forwarding to `target`. */
export async function startTcpRelay(target: number | undefined): Promise<TcpRelay> {
  const open = new Set<Socket>();
  const waiting = new Set<() => void>();
  let accepted = 0;
  let toReset = 0;
  const relay = {
    target,
    mode: "forward" as RelayMode,
  };
  const track = (socket: Socket): void => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    // A cut or a reset is what this relay is for: never an unhandled error.
    socket.on("error", () => undefined);
  };
  const server: Server = createServer((client) => {
    accepted++;
    track(client);
    for (const wake of [...waiting]) wake();
    if (toReset > 0) {
      toReset--;
      client.resetAndDestroy();
      return;
    }
    if (relay.mode === "stall") return;
    if (relay.target === undefined) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: "127.0.0.1", port: relay.target });
    track(upstream);
    upstream.once("error", () => client.resetAndDestroy());
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get target() {
      return relay.target;
    },
    set target(value) {
      relay.target = value;
    },
    get mode() {
      return relay.mode;
    },
    set mode(value) {
      relay.mode = value;
    },
    get accepted() {
      return accepted;
    },
    resetNext: (count) => {
      toReset = count;
    },
    cutConnections: () => {
      for (const socket of [...open]) socket.resetAndDestroy();
    },
    waitForAccepted: (count, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (accepted < count) return;
          clearTimeout(timer);
          waiting.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`the relay accepted ${accepted} of ${count} connections in time`));
        }, timeoutMs);
        waiting.add(check);
        check();
      }),
    close: async () => {
      for (const socket of [...open]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
