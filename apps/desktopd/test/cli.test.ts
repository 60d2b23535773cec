import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli } from "./support/cli.js";

describe("desktopd CLI", () => {
  it("prints help for run with its options and exits 0", async () => {
    const { code, out } = await cli("run", "--help");
    expect(code).toBe(0);
    for (const option of [
      "--netns <name>",
      "--configure",
      "--subnet <cidr>",
      "--mtu <bytes>",
      "--pcap <file>",
      "--dns-record <record>",
      "--dns-forward <domain=ip[:port]>",
      "--dns-upstream <ip[:port]>",
      "--dns-host-mode <mode>",
      "--publish-host-ip <ip>",
    ]) {
      expect(out).toContain(option);
    }
    expect(out).toContain("--log-level <level>");
  });

  it.each([
    [
      ["run", "--netns", "n", "--subnet", "10.0.0.0/33"],
      "desktopd: --subnet: prefix length /33 is larger than 32",
    ],
    [["run", "--netns", "n", "--mtu", "60"], "desktopd: --mtu: must be between 68 and 65520"],
    [["run", "--netns", "bad/name"], "desktopd: --netns: must be 1-63 characters"],
    [["demo", "--log-level", "chatty"], "desktopd: --log-level: must be one of"],
    [
      ["run", "--netns", "n", "--dns-record", "a.test=10.0.0.1", "--dns-record", "b.test=x"],
      'desktopd: --dns-record: "b.test=x": "x" is not an IP address',
    ],
    [["run", "--netns", "n", "--dns-forward", "corp.example=10.0.0.1:0"], "desktopd: --dns-forward:"],
  ])("rejects %j with one line on stderr and exit code 1", async (argv, start) => {
    const { code, out, err } = await cli(...argv);
    expect(code).toBe(1);
    expect(out).toBe("");
    expect(err.startsWith(start)).toBe(true);
    expect(err.trimEnd().split("\n")).toHaveLength(1);
  });

  it("refuses --configure without a namespace to configure", async () => {
    const { code, err } = await cli("run", "--configure");
    expect(code).toBe(1);
    expect(err).toBe("desktopd: --configure: needs --netns\n");
  });

  it("names a malformed --qemu-socket address", async () => {
    const { code, err } = await cli("run", "--qemu-socket", "tcp:localhost:99999");
    expect(code).toBe(1);
    expect(err).toBe(
      'desktopd: --qemu-socket: "tcp:localhost:99999" is neither a unix socket path nor tcp:HOST:PORT\n',
    );
  });

  describe("--config", () => {
    const dir = mkdtempSync(join(tmpdir(), "desktopd-config-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };

    it("validates the file's values like options", async () => {
      const { code, err } = await cli("run", "--config", file("mtu.json", '{"mtu": 10}'));
      expect(code).toBe(1);
      expect(err).toBe(`desktopd: --config: ${join(dir, "mtu.json")}: mtu: must be between 68 and 65520\n`);
    });

    it("reads YAML with the command line's option names, and names a bad key's path", async () => {
      const yaml = file(
        "c.yaml",
        "mtu: 1400\nqemu-socket: /tmp/x.sock\negress:\n  - deny 10.0.0.0/8\n  - block 1.2.3.4\n",
      );
      const { code, err } = await cli("run", "--config", yaml);
      expect(code).toBe(1);
      expect(err).toBe(
        `desktopd: --config: ${yaml}: egress[1]: egress rule "block 1.2.3.4": starts with allow or deny\n`,
      );
      const typed = file("t.yml", "mtu: [1]\n");
      expect((await cli("run", "--config", typed)).err).toContain(`${typed}: mtu: must be a number`);
      expect((await cli("run", "--config", file("b.yaml", "mtu: [1\n"))).err).toContain("is not valid YAML");
    });

    it("lets the command line win over the file", async () => {
      const path = file("both.json", '{"mtu": 9000, "configure": true}');
      const { err } = await cli("run", "--config", path, "--mtu", "1400");
      // The file's MTU is overridden; its "configure" is still read.
      expect(err).toBe("desktopd: --configure: needs --netns\n");
    });

    it("rejects unknown keys, bad JSON and missing files", async () => {
      expect((await cli("run", "--config", file("k.json", '{"mtuu": 1}'))).err).toContain(
        'unknown key "mtuu"',
      );
      expect((await cli("run", "--config", file("j.json", "{mtu: 1}"))).err).toContain("is not valid JSON");
      expect((await cli("run", "--config", file("a.json", "[1]"))).err).toContain(
        "must hold an object of options",
      );
      expect((await cli("run", "--config", join(dir, "none.json"))).err).toContain("cannot read");
    });
  });

  it("rejects an unknown command", async () => {
    const { code, err } = await cli("fly");
    expect(code).toBe(1);
    expect(err).toContain("unknown command 'fly'");
  });
});
