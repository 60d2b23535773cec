/** A config reload while serving: records, forwarding and the host layer change; the registry stays. */
import { afterEach, describe, expect, it } from "vitest";
import { createDns, createDnsServer, type Dns, type DnsServer } from "../src/index.js";

const open: (Dns | DnsServer)[] = [];
afterEach(() => {
  for (const d of open.splice(0)) d.close();
});

describe("createDns().reconfigure", () => {
  it("answers with the new records at once, not from the cache, and keeps registered names", async () => {
    const dns = createDns({ records: [{ name: "web.test", type: "A", data: "10.0.0.1" }], host: false });
    open.push(dns);
    dns.registry.register("vm.internal", "192.168.65.9");
    const ask = async (name: string) => (await dns.resolver.resolve({ name, type: "A" })).answers;
    expect(await ask("web.test")).toMatchObject([{ data: "10.0.0.1" }]);

    dns.reconfigure({ records: [{ name: "web.test", type: "A", data: "10.0.0.2" }] });
    expect(await ask("web.test")).toMatchObject([{ data: "10.0.0.2" }]);
    expect(await ask("vm.internal")).toMatchObject([{ data: "192.168.65.9" }]);

    dns.reconfigure({ records: [] });
    const gone = await dns.resolver.resolve({ name: "web.test", type: "A" });
    // No host layer: a name nobody owns is refused rather than guessed.
    expect(gone.rcode).toBe("REFUSED");
  });

  it("starts and stops forwarding a domain to a real nameserver", async () => {
    const upstream = await createDnsServer({
      records: [{ name: "app.corp.test", type: "A", data: "10.9.9.9" }],
      host: false,
      listen: { host: "127.0.0.1", port: 0 },
    });
    open.push(upstream);
    const dns = createDns({ host: false });
    open.push(dns);
    const ask = () => dns.resolver.resolve({ name: "app.corp.test", type: "A" });
    expect((await ask()).rcode).toBe("REFUSED");

    dns.reconfigure({
      forward: [{ domain: "corp.test", servers: [{ host: "127.0.0.1", port: upstream.port }] }],
    });
    const forwarded = await ask();
    expect(forwarded.layer).toBe("forward");
    expect(forwarded.answers).toMatchObject([{ data: "10.9.9.9" }]);
    // The forwarded answer sits in the cache now; dropping the rule must not leave it answering.
    dns.reconfigure({ forward: [] });
    expect((await ask()).rcode).toBe("REFUSED");
  });
});
