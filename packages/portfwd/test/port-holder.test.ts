import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findPortHolder } from "../src/index.js";
import { conflictingSockets, parseProcNet } from "../src/port-holder.js";

// Lines as a little-endian kernel prints them (x86-64, arm64).
const TCP4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11111 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 33333 1 0000000000000000 20 4 30 10 -1
   3: garbage
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 44444 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 55555 1 0000000000000000 100 0 0 10 0
`;
const UDP4 = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 66666 2 0000000000000000 0
`;

describe("parseProcNet", () => {
  it("reads IPv4 entries in host byte order and skips malformed lines", () => {
    const e = parseProcNet(TCP4, 4, true);
    expect(e.map((x) => [x.addressText, x.port, x.state, x.inode])).toEqual([
      ["127.0.0.1", 8080, 0x0a, 11111],
      ["0.0.0.0", 80, 0x0a, 22222],
      ["127.0.0.1", 8080, 0x01, 33333],
    ]);
  });

  it("reads IPv6 entries, word by word", () => {
    const e = parseProcNet(TCP6, 6, true);
    expect(e.map((x) => [x.addressText, x.port, x.inode])).toEqual([
      ["::1", 8081, 44444],
      ["::ffff:127.0.0.1", 8082, 55555],
    ]);
  });

  it("finds listeners that conflict: same address, wildcards, IPv4-mapped", () => {
    const all = [...parseProcNet(TCP4, 4, true), ...parseProcNet(TCP6, 6, true)];
    const inodes = (address: string, port: number) =>
      conflictingSockets(all, "tcp", address, port).map((e) => e.inode);
    expect(inodes("127.0.0.1", 8080)).toEqual([11111]); // the established socket does not count
    expect(inodes("0.0.0.0", 8080)).toEqual([11111]);
    expect(inodes("10.0.0.1", 8080)).toEqual([]);
    expect(inodes("10.0.0.1", 80)).toEqual([22222]);
    expect(inodes("::1", 8081)).toEqual([44444]);
    expect(inodes("127.0.0.1", 8082)).toEqual([55555]);
    // 0.0.0.0 covers IPv4 (and IPv4-mapped) addresses, not ::1: the kernel lets both bind.
    expect(inodes("::1", 80)).toEqual([]);
    expect(inodes("::ffff:10.0.0.1", 80)).toEqual([22222]);
    expect(inodes("::", 80)).toEqual([22222]);
    const udp = parseProcNet(UDP4, 4, true);
    expect(conflictingSockets(udp, "udp", "127.0.0.1", 53).map((e) => e.inode)).toEqual([66666]);
    expect(conflictingSockets(udp, "udp", "127.0.0.1", 54)).toEqual([]);
  });
});

describe.skipIf(process.platform !== "linux")("findPortHolder", () => {
  it("names this process as the holder of a port it listens on", async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const holder = await findPortHolder("tcp", "127.0.0.1", port);
      expect(holder).toMatchObject({ pid: process.pid, localAddress: `127.0.0.1:${port}` });
      expect(holder?.command.length).toBeGreaterThan(0);
      expect(await findPortHolder("udp", "127.0.0.1", port)).toBeUndefined();
    } finally {
      server.close();
    }
  });
});

describe.skipIf(process.platform !== "linux")("findPortHolder over a /proc tree", () => {
  it("finds the holder among many processes, skipping those it cannot read", async () => {
    const root = await mkdtemp(join(tmpdir(), "dtd-proc-"));
    try {
      await mkdir(join(root, "net"));
      await writeFile(join(root, "net/tcp"), TCP4);
      await writeFile(join(root, "net/tcp6"), "");
      // 300 processes with a few fds each; some have no readable fd directory (exited, or not ours).
      for (let pid = 100; pid < 400; pid++) {
        await mkdir(join(root, String(pid)));
        if (pid % 7 === 0) continue;
        await mkdir(join(root, `${pid}/fd`));
        for (let fd = 0; fd < 4; fd++)
          await symlink(`socket:[${pid * 10 + fd}]`, join(root, `${pid}/fd/${fd}`));
      }
      await symlink("socket:[22222]", join(root, "398/fd/9"));
      await writeFile(join(root, "398/comm"), "nginx\n");
      await writeFile(join(root, "398/cmdline"), "nginx\0-g\0daemon off;\0");
      expect(await findPortHolder("tcp", "127.0.0.1", 80, root)).toEqual({
        pid: 398,
        command: "nginx",
        cmdline: "nginx -g daemon off;",
        localAddress: "0.0.0.0:80",
        inode: 22222,
      });
      expect(await findPortHolder("tcp", "127.0.0.1", 8080, root)).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
