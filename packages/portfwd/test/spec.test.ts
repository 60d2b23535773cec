import { describe, expect, it } from "vitest";
import { parsePublishSpec, SpecError } from "../src/index.js";

const ports = (spec: string, defaultHostIp?: string) =>
  parsePublishSpec(spec, defaultHostIp ? { defaultHostIp } : {}).mappings.map(
    (m) => `${m.protocol} ${m.hostIp} ${m.hostPort}>${m.targetPort}`,
  );

describe("parsePublishSpec", () => {
  it.each([
    ["80", ["tcp 127.0.0.1 0>80"]],
    ["8080:80", ["tcp 127.0.0.1 8080>80"]],
    ["0:80", ["tcp 127.0.0.1 0>80"]],
    ["53:53/udp", ["udp 127.0.0.1 53>53"]],
    ["8080:80/TCP", ["tcp 127.0.0.1 8080>80"]],
    ["0.0.0.0:8080:80", ["tcp 0.0.0.0 8080>80"]],
    ["10.1.2.3::80/udp", ["udp 10.1.2.3 0>80"]],
    ["[::1]:8080:80", ["tcp ::1 8080>80"]],
    ["[::]::80", ["tcp :: 0>80"]],
    ["[fe80::1%eth0]:8080:80", ["tcp fe80::1%eth0 8080>80"]],
    [
      "9000-9002:8000-8002",
      ["tcp 127.0.0.1 9000>8000", "tcp 127.0.0.1 9001>8001", "tcp 127.0.0.1 9002>8002"],
    ],
    ["8000-8001", ["tcp 127.0.0.1 0>8000", "tcp 127.0.0.1 0>8001"]],
    ["127.0.0.1::8000-8001/udp", ["udp 127.0.0.1 0>8000", "udp 127.0.0.1 0>8001"]],
    ["65535:1", ["tcp 127.0.0.1 65535>1"]],
    [":80", ["tcp 127.0.0.1 0>80"]],
    // Docker reads ports with leading zeros as decimal.
    ["008080:00080", ["tcp 127.0.0.1 8080>80"]],
    // One spelling per address: ids and the conflict check compare text.
    ["[0:0::1]:8080:80", ["tcp ::1 8080>80"]],
    ["[FE80::1%eth0]:8080:80", ["tcp fe80::1%eth0 8080>80"]],
    ["[::ffff:127.0.0.1]:8080:80/udp", ["udp 127.0.0.1 8080>80"]],
  ])("%s", (spec, expected) => {
    expect(ports(spec)).toEqual(expected);
  });

  it("uses the configured default host address", () => {
    expect(ports("8080:80", "0.0.0.0")).toEqual(["tcp 0.0.0.0 8080>80"]);
    expect(ports("1.2.3.4:8080:80", "0.0.0.0")).toEqual(["tcp 1.2.3.4 8080>80"]);
    // A default IPv6 host address gets the one spelling bracketed ones get.
    expect(ports("8080:80", "0:0::0001")).toEqual(["tcp ::1 8080>80"]);
  });

  // [spec, the part the error points at, words of the problem]
  it.each([
    ["", "", "is empty"],
    ["80a", "80a", 'container port "80a" is not a number'],
    ["8080:", "", "container port is missing"],
    ["8080:70000", "70000", "out of range 1-65535"],
    ["8080:0", "0", "out of range 1-65535"],
    ["99999:80", "99999", "host port 99999 is out of range"],
    ["123456:80", "123456", "host port 123456 is out of range 0-65535"],
    ["x:80", "x", 'host port "x" is not a number'],
    ["8080:80/sctp", "sctp", "sctp is not supported"],
    ["8080:80/icmp", "icmp", 'protocol "icmp" is not tcp or udp'],
    ["8080:80/", "", 'protocol "" is not tcp or udp'],
    ["300.1.1.1:8080:80", "300.1.1.1", "is not an IPv4 address"],
    ["localhost:8080:80", "localhost", "is not an IPv4 address"],
    ["::1:8080:80", "::1:8080:80", "IPv6 host addresses go in brackets"],
    ["[::1:8080:80", "[::1:8080:80", 'no closing "]"'],
    ["[::1]8080:80", "8", 'expected ":"'],
    ["[::1]:80", "80", "host_port:container_port"],
    ["[zz::1]:8080:80", "zz::1", "is not an IPv6 address"],
    ["9000-9001:80", "9000-9001", "differ in length"],
    ["9000:80-81", "9000", "differ in length"],
    ["9000-9002:80-81", "9000-9002", "(3) and container ports 80-81 (2)"],
    ["81-80", "81-80", "ends before it starts"],
    ["1-65535", "1-65535", "has 65535 ports; at most 4096 per spec"],
    ["80-x", "x", 'end of container port range "x" is not a number'],
    ["0-5:80-85", "0-5", "cannot start a range"],
    ["8080 :80", " ", "contains whitespace"],
    ["127.0.0.1:80", "127.0.0.1", "is an address, not a host port; did you mean 127.0.0.1::80"],
    ["127.0.0.1:53/udp", "127.0.0.1", "did you mean 127.0.0.1::53/udp (any free port)"],
  ])("rejects %j, pointing at %j", (spec, part, problem) => {
    let error: unknown;
    try {
      parsePublishSpec(spec);
    } catch (e) {
      error = e;
    }
    expect(SpecError.isInstance(error)).toBe(true);
    const e = error as SpecError;
    expect(e.problem).toMatch(new RegExp(problem.replace(/[()[\]]/g, "\\$&")));
    expect(spec.slice(e.column, e.column + e.length)).toBe(part);
    expect(e.message).toContain(`"${spec}"`);
    expect(e.caret().split("\n")[1]).toBe(`${" ".repeat(e.column)}${"^".repeat(Math.max(1, e.length))}`);
  });
});
