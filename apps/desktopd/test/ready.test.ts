import { describe, expect, it } from "vitest";
import { formatReadyLine, parseReadyLine, type ReadyInfo } from "../src/ready.js";

const info: ReadyInfo = {
  netns: "dtd-x-1",
  ifname: "eth0",
  mac: "02:00:00:aa:bb:cc",
  gateway: "192.168.65.1",
  host: "192.168.65.254",
  address: "192.168.65.3/24",
  mtu: 1500,
  subnet: "192.168.65.0/24",
  qemu: [],
  vfkit: [],
};

describe("ready line", () => {
  it("lists the pairs in the documented order", () => {
    expect(formatReadyLine(info)).toBe(
      "desktopd ready netns=dtd-x-1 ifname=eth0 mac=02:00:00:aa:bb:cc gateway=192.168.65.1 " +
        "host=192.168.65.254 address=192.168.65.3/24 mtu=1500 subnet=192.168.65.0/24",
    );
  });

  it("leaves address out when the guest configures itself", () => {
    const line = formatReadyLine({ ...info, address: undefined });
    expect(line).not.toContain("address=");
    expect(line.endsWith("host=192.168.65.254 mtu=1500 subnet=192.168.65.0/24")).toBe(true);
  });

  it("names the IPv6 prefix after the subnet when IPv6 is on", () => {
    expect(formatReadyLine({ ...info, ipv6: "fdc4:f303:9324::/64" })).toContain(
      "subnet=192.168.65.0/24 ipv6=fdc4:f303:9324::/64",
    );
  });

  it("round-trips through parseReadyLine", () => {
    expect(parseReadyLine(`${formatReadyLine(info)}\n`)).toEqual({
      netns: "dtd-x-1",
      ifname: "eth0",
      mac: "02:00:00:aa:bb:cc",
      gateway: "192.168.65.1",
      host: "192.168.65.254",
      address: "192.168.65.3/24",
      mtu: "1500",
      subnet: "192.168.65.0/24",
    });
  });

  it("lists the sockets served for VMs, comma-separated", () => {
    const line = formatReadyLine({
      ...info,
      netns: undefined,
      ifname: undefined,
      mac: undefined,
      address: undefined,
      qemu: ["/run/user/0/desktopd/qemu.sock", "tcp:127.0.0.1:4444"],
      vfkit: ["/run/user/0/desktopd/vfkit.sock"],
      stdio: true,
    });
    expect(parseReadyLine(line)).toEqual({
      gateway: "192.168.65.1",
      host: "192.168.65.254",
      mtu: "1500",
      subnet: "192.168.65.0/24",
      qemu: "/run/user/0/desktopd/qemu.sock,tcp:127.0.0.1:4444",
      vfkit: "/run/user/0/desktopd/vfkit.sock",
      stdio: "yes",
    });
  });

  it("does not take other lines for a ready line", () => {
    expect(parseReadyLine('{"level":30,"msg":"desktopd ready"}')).toBeUndefined();
    expect(parseReadyLine("desktopd readyish netns=x")).toBeUndefined();
  });
});
