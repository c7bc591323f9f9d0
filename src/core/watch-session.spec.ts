import { describe, expect, it } from "vitest";
import { SERVER_ADMIN_CALLER } from "./caller.js";
import type { CommyCore } from "./commy-core.js";
import { WatchSession } from "./watch-session.js";

// Pings and the outbox need no core: these specs exercise the session alone.
const noCore = {} as CommyCore;

describe("WatchSession outbox", () => {
  it("room() holds a sender back while the outbox is full, and lets it go once the consumer takes", async () => {
    const session = new WatchSession(noCore, SERVER_ADMIN_CALLER, { maxReadyEvents: 4 });
    for (let i = 0; i < 4; i++) session.ping(String(i));
    let released = false;
    const room = session.room().then(() => (released = true));
    await Promise.resolve();
    expect(released).toBe(false);
    const taken = await session.take();
    expect(taken?.map((e) => (e.type === "pong" ? e.requestId : "?"))).toEqual([
      "0",
      "1",
      "2",
      "3",
    ]);
    await room;
    expect(released).toBe(true);
    session.close();
  });

  it("a consumer that takes nothing while replies wait is cut off with RESOURCE_EXHAUSTED", async () => {
    const session = new WatchSession(noCore, SERVER_ADMIN_CALLER, {
      stallLimitMs: 40,
      progressIntervalMs: 0,
    });
    session.ping("1");
    const ended = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (session.endedWith !== undefined) {
          clearInterval(poll);
          resolve();
        }
      }, 5);
    });
    await ended;
    expect(session.endedWith?.code).toBe("RESOURCE_EXHAUSTED");
    expect(await session.take()).toBeUndefined();
  });

  it("a waiting consumer gets what was pushed in the same turn in one take", async () => {
    const session = new WatchSession(noCore, SERVER_ADMIN_CALLER);
    const taken = session.take();
    await Promise.resolve();
    // Each in a later microtask, as commands read from one socket chunk are.
    for (let i = 0; i < 3; i++) {
      session.ping(String(i));
      await Promise.resolve();
    }
    expect((await taken)?.map((e) => (e.type === "pong" ? e.requestId : "?"))).toEqual([
      "0",
      "1",
      "2",
    ]);
    session.close();
  });

  it("room() resolves at once when the session is closed", async () => {
    const session = new WatchSession(noCore, SERVER_ADMIN_CALLER, { maxReadyEvents: 1 });
    session.ping("1");
    const room = session.room();
    session.close();
    await expect(room).resolves.toBeUndefined();
  });
});
