/** The handler's onQuery observer: every answered query, and an observer that throws costs nothing. */
import packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { createDns, type QueryLogEntry } from "../src/index.js";

const query = (name: string, id = 1) =>
  packet.encode({ type: "query", id, flags: packet.RECURSION_DESIRED, questions: [{ type: "A", name }] });

describe("onQuery", () => {
  it("sees each answered query with its layer, rcode and latency", async () => {
    const seen: QueryLogEntry[] = [];
    const dns = createDns({
      records: [{ name: "web.test", type: "A", data: "10.0.0.1" }],
      host: false,
      server: { onQuery: (e) => seen.push(e) },
    });
    await dns.handler.handle(query("web.test"), "192.168.65.3:5000", "udp");
    await dns.handler.handle(query("nobody.test", 2), "192.168.65.3:5000", "udp");
    expect(seen.map((e) => [e.name, e.layer, e.rcode])).toEqual([
      ["web.test", "fixed", "NOERROR"],
      ["nobody.test", "none", "REFUSED"],
    ]);
    expect(seen[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    dns.close();
  });

  it("answers even when the observer throws", async () => {
    const dns = createDns({
      records: [{ name: "web.test", type: "A", data: "10.0.0.1" }],
      host: false,
      server: {
        onQuery: () => {
          throw new Error("observer bug");
        },
      },
    });
    const answer = await dns.handler.handle(query("web.test"), "192.168.65.3:5000", "udp");
    expect(packet.decode(answer!).answers).toMatchObject([{ data: "10.0.0.1" }]);
    dns.close();
  });
});
