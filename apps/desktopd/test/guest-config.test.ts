import { describe, expect, it } from "vitest";
import { guestConfigCommands, staticIpv6Address } from "../src/guest-config.js";

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

  it("adds a static IPv6 address and the default route through the router's link-local address", () => {
    expect(staticIpv6Address("fdc4:f303:9324::/64", "192.168.65.3")).toBe("fdc4:f303:9324::3");
    expect(staticIpv6Address("fd00:1:2:3::/64", "10.0.0.200")).toBe("fd00:1:2:3::c8");
    const commands = guestConfigCommands({
      netns: "g",
      ifname: "eth0",
      address: "192.168.65.3",
      prefixLength: 24,
      gateway: "192.168.65.1",
      mtu: 1500,
      ipv6: { address: "fdc4:f303:9324::3", gatewayLinkLocal: "fe80::5894:efff:fee4:cdd" },
    });
    expect(commands.slice(4)).toEqual([
      ["-n", "g", "-6", "addr", "replace", "fdc4:f303:9324::3/64", "dev", "eth0", "nodad"],
      ["-n", "g", "-6", "route", "replace", "default", "via", "fe80::5894:efff:fee4:cdd", "dev", "eth0"],
    ]);
  });
});
