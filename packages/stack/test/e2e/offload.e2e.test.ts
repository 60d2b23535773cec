/**
 * The stack in this process and a Linux guest on a TAP opened with `offload: true`: the guest
 * sends TCP super-segments with partial checksums and the stack writes super-segments back
 * (virtio-net header, TSO). Downloads and uploads must arrive whole, and the frames on the
 * link must really be larger than the MTU in both directions.
 */
import { createStack, openTap, type Stack, type TapTransport, withFaults } from "@desktopd/stack";
import {
  createNetns,
  haveRootAndNetns,
  type Netns,
  SEEDED_BYTES_PROGRAM,
  seededSha256,
  startHttpServer,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();
const SIZE = 50 * 1024 * 1024;
/** One full frame at MTU 1500; the average of a direction carrying super-segments is far above. */
const FULL_FRAME = 1514;
const q = (s: string | number) => `'${String(s).replaceAll("'", `'\\''`)}'`;

describe.skipIf(!env.ok)("transfers over a TAP with checksum offload and TSO", () => {
  let ns: Netns;
  let stack: Stack | undefined;
  let tap: TapTransport;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let url: string;

  const sh = async (script: string, timeoutMs = 60_000) => {
    const r = await ns.exec("bash", ["-o", "pipefail", "-c", script], { timeoutMs });
    if (r.code !== 0) {
      throw new Error(
        `failed (code ${r.code}): ${script}\n${r.stderr}\n${JSON.stringify(stack?.counters())}`,
      );
    }
    return r.stdout;
  };

  beforeAll(async () => {
    http = await startHttpServer();
    ns = await createNetns("offload");
    stack = createStack();
    tap = await openTap({ netns: ns.name, offload: true });
    expect(tap.offload).toEqual({ tso: true, csum: true });
    stack.attach(tap);
    const { gateway, hostAddress } = stack.config;
    url = `http://${hostAddress}:${http.port}`;
    await sh(
      `ip link set eth0 up && ip addr add 192.168.65.3/24 dev eth0 && ip route add default via ${gateway}`,
    );
  });

  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.remove();
      await http?.close();
    }
  });

  it("the guest NIC offers checksum offload and TSO", async () => {
    const features = await sh("ethtool -k eth0 || true");
    if (features.includes("tcp-segmentation-offload")) {
      expect(features).toMatch(/tx-checksumming: on/);
      expect(features).toMatch(/tcp-segmentation-offload: on/);
    }
  });

  it("downloads 50 MB intact, sent to the guest as super-segments", async () => {
    const before = stack!.counters().frames;
    const out = await sh(
      `curl -sS --fail --max-time 150 ${q(`${url}/bytes/${SIZE}/51`)} | sha256sum`,
      180_000,
    );
    expect(out.split(" ")[0]).toBe(seededSha256(SIZE, 51));
    const after = stack!.counters().frames;
    expect((after.bytesOut - before.bytesOut) / (after.out - before.out)).toBeGreaterThan(FULL_FRAME);
  }, 200_000);

  it("uploads 50 MB intact, received from the guest as super-segments", async () => {
    const before = stack!.counters().frames;
    const out = await sh(
      `${q(process.execPath)} --input-type=module -e ${q(SEEDED_BYTES_PROGRAM)} ${SIZE} 52 | ` +
        `curl -sS --fail --max-time 150 -H 'Expect:' -T - ${q(`${url}/upload`)}`,
      180_000,
    );
    expect(out.trim()).toBe(`${seededSha256(SIZE, 52)} ${SIZE}`);
    const after = stack!.counters().frames;
    expect((after.bytesIn - before.bytesIn) / (after.in - before.in)).toBeGreaterThan(FULL_FRAME);
  }, 200_000);

  it("dropped nothing for checksums or lengths", () => {
    const drops = stack!.counters().drops;
    for (const reason of Object.keys(drops)) expect(reason).not.toMatch(/checksum|total-length|truncated/);
    expect(tap.stats.drops).toEqual({});
  });
});

describe.skipIf(!env.ok)("offload through the seeded fault injector", () => {
  const size = 8 * 1024 * 1024;
  let ns: Netns;
  let stack: Stack | undefined;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let faults: ReturnType<typeof withFaults>;
  let url: string;

  const sh = async (script: string, timeoutMs = 60_000) => {
    const r = await ns.exec("bash", ["-o", "pipefail", "-c", script], { timeoutMs });
    if (r.code !== 0) throw new Error(`failed (code ${r.code}): ${script}\n${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    http = await startHttpServer();
    ns = await createNetns("offload-faults");
    stack = createStack();
    // A lost super-frame is up to 44 lost segments at once: recovery must still get everything through.
    faults = withFaults(await openTap({ netns: ns.name, offload: true }), {
      seed: 20251125,
      drop: 0.02,
      duplicate: 0.02,
      reorder: 0.02,
    });
    expect(faults.offload).toEqual({ tso: true, csum: true });
    stack.attach(faults);
    url = `http://${stack.config.hostAddress}:${http.port}`;
    await sh(
      `ip link set eth0 up && ip addr add 192.168.65.3/24 dev eth0 && ip route add default via ${stack.config.gateway}`,
    );
  });

  afterAll(async () => {
    try {
      await stack?.close();
    } finally {
      await ns?.remove();
      await http?.close();
    }
  });

  it("downloads and uploads 8 MB intact", async () => {
    const down = await sh(
      `curl -sS --fail --max-time 150 ${q(`${url}/bytes/${size}/53`)} | sha256sum`,
      180_000,
    );
    expect(down.split(" ")[0]).toBe(seededSha256(size, 53));
    const up = await sh(
      `${q(process.execPath)} --input-type=module -e ${q(SEEDED_BYTES_PROGRAM)} ${size} 54 | ` +
        `curl -sS --fail --max-time 150 -H 'Expect:' -T - ${q(`${url}/upload`)}`,
      180_000,
    );
    expect(up.trim()).toBe(`${seededSha256(size, 54)} ${size}`);
    expect(faults.stats.faults.dropped).toBeGreaterThan(0);
  }, 400_000);
});
