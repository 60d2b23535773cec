import { describe, expect, it } from "vitest";
import { ConfigError, DialError, StackError, TransportError, WireError } from "../src/errors.js";

describe("typed errors", () => {
  it("isInstance tells this package's errors apart by code, across copies of the package", () => {
    const copy = Object.assign(new Error("from another copy"), {
      code: "ERR_DESKTOPD_DIAL",
      reason: "reset",
    });
    expect(DialError.isInstance(copy)).toBe(true);
    expect(StackError.isInstance(copy)).toBe(true);
    expect(WireError.isInstance(copy)).toBe(false);
    for (const e of [new WireError("ipv4", "truncated"), new TransportError("x"), new ConfigError("x")]) {
      expect(StackError.isInstance(e)).toBe(true);
    }
  });

  it("does not claim other desktopd packages' errors", () => {
    for (const code of [
      "ERR_DESKTOPD_DNS_CONFIG",
      "ERR_DESKTOPD_PORTFWD_SPEC",
      "ERR_DESKTOPD_INVALID_OPTION",
    ]) {
      expect(StackError.isInstance(Object.assign(new Error("x"), { code }))).toBe(false);
    }
    expect(StackError.isInstance({ code: "ERR_DESKTOPD_DIAL" })).toBe(false);
  });
});
