import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { installResolvConf, renderResolvConf } from "../src/resolv-conf.js";

describe("renderResolvConf", () => {
  it("lists nameservers in order and the search domains on one line", () => {
    const text = renderResolvConf({
      netns: "g",
      nameservers: ["192.168.65.1", "192.168.65.2"],
      searchDomains: ["corp.example", "example"],
    });
    expect(text.split("\n").slice(1)).toEqual([
      "nameserver 192.168.65.1",
      "nameserver 192.168.65.2",
      "search corp.example example",
      "",
    ]);
    expect(text.startsWith("# ")).toBe(true);
  });

  it("omits search without search domains", () => {
    expect(renderResolvConf({ netns: "g", nameservers: ["10.0.0.1"], searchDomains: [] })).not.toContain(
      "search",
    );
  });
});

describe("installResolvConf", () => {
  let etc: string;
  beforeEach(async () => {
    etc = await mkdtemp(join(tmpdir(), "dtd-resolv-"));
  });
  afterEach(async () => {
    await rm(etc, { recursive: true, force: true });
  });

  it("writes /etc/netns/NAME/resolv.conf and removes file and directory on undo", async () => {
    const undo = await installResolvConf("g", "nameserver 10.0.0.1\n", etc);
    expect(await readFile(join(etc, "g", "resolv.conf"), "utf8")).toBe("nameserver 10.0.0.1\n");
    await undo();
    expect(await readdir(etc)).toEqual([]);
  });

  it("puts back a resolv.conf that was there before", async () => {
    await mkdir(join(etc, "g"));
    await writeFile(join(etc, "g", "resolv.conf"), "nameserver 9.9.9.9\n");
    const undo = await installResolvConf("g", "nameserver 10.0.0.1\n", etc);
    expect(await readFile(join(etc, "g", "resolv.conf"), "utf8")).toBe("nameserver 10.0.0.1\n");
    await undo();
    expect(await readFile(join(etc, "g", "resolv.conf"), "utf8")).toBe("nameserver 9.9.9.9\n");
  });

  it("keeps a directory it did not create", async () => {
    await mkdir(join(etc, "g"));
    await writeFile(join(etc, "g", "hosts"), "127.0.0.1 localhost\n");
    const undo = await installResolvConf("g", "nameserver 10.0.0.1\n", etc);
    await undo();
    expect(await readdir(join(etc, "g"))).toEqual(["hosts"]);
  });
});
