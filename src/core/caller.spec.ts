import { describe, expect, it } from "vitest";
import { isOnServerMachine } from "./caller.js";

const from = (clientAddress: string | undefined) => ({ principal: undefined, clientAddress });

describe("isOnServerMachine", () => {
  it("is true for loopback addresses, IPv4, IPv6 and IPv4 mapped into IPv6", () => {
    for (const address of ["127.0.0.1:5000", "127.8.9.1:1", "::1:443", "::ffff:127.0.0.1:80"])
      expect(isOnServerMachine(from(address)), address).toBe(true);
    expect(isOnServerMachine(from("::ffff:7f00:1:80"))).toBe(true);
  });

  it("is false for any other address, and for an unknown one", () => {
    for (const address of ["10.0.0.5:5000", "::2:443", "::ffff:10.0.0.1:80", "?:?", ""])
      expect(isOnServerMachine(from(address)), address).toBe(false);
    expect(isOnServerMachine(from(undefined))).toBe(false);
  });
});
