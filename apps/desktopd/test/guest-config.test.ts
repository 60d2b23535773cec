import { describe, expect, it } from "vitest";
import { guestConfigCommands } from "../src/guest-config.js";

describe("guestConfigCommands", () => {
  it("brings lo and the NIC up, then sets the address and the default route, inside the namespace", () => {
    const commands = guestConfigCommands({
      netns: "g",
      ifname: "eth0",
      address: "10.0.2.3",
      prefixLength: 24,
      gateway: "10.0.2.1",
      mtu: 9000,
    });
    expect(commands).toEqual([
      ["-n", "g", "link", "set", "lo", "up"],
      ["-n", "g", "link", "set", "eth0", "mtu", "9000", "up"],
      ["-n", "g", "addr", "replace", "10.0.2.3/24", "dev", "eth0"],
      ["-n", "g", "route", "replace", "default", "via", "10.0.2.1", "dev", "eth0"],
    ]);
  });
});
