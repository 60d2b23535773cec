/**
 * The stack in this process and a Linux guest on a TAP opened with `offload: true`: the guest
 * sends TCP super-segments with partial checksums and the stack writes super-segments back
 * (virtio-net header, TSO). Downloads and uploads must arrive whole, and the frames on the
 * link must really be larger than the MTU in both directions.
 */
import { withFaults } from "@desktopd/stack";
import {
  downloadScript,
  haveRootAndNetns,
  type StackGuest,
  seededSha256,
  startHttpServer,
  startStackGuest,
  uploadScript,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();
const SIZE = 50 * 1024 * 1024;
/** One full frame at MTU 1500; the average of a direction carrying super-segments is far above. */
const FULL_FRAME = 1514;

describe.skipIf(!env.ok)("transfers over a TAP with checksum offload and TSO", () => {
  let guest: StackGuest;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer();
    guest = await startStackGuest({ prefix: "offload", tap: { offload: true } });
    expect(guest.tap.offload).toEqual({ tso: true, csum: true });
    url = `http://${guest.stack.config.hostAddress}:${http.port}`;
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  it("the guest NIC offers checksum offload and TSO", async () => {
    const features = await guest.sh("ethtool -k eth0 || true");
    if (features.includes("tcp-segmentation-offload")) {
      expect(features).toMatch(/tx-checksumming: on/);
      expect(features).toMatch(/tcp-segmentation-offload: on/);
    }
  });

  it("downloads 50 MB intact, sent to the guest as super-segments", async () => {
    const before = guest.stack.counters().frames;
    const out = await guest.sh(downloadScript(url, SIZE, 51), 180_000);
    expect(out.split(" ")[0]).toBe(seededSha256(SIZE, 51));
    const after = guest.stack.counters().frames;
    expect((after.bytesOut - before.bytesOut) / (after.out - before.out)).toBeGreaterThan(FULL_FRAME);
  }, 200_000);

  it("uploads 50 MB intact, received from the guest as super-segments", async () => {
    const before = guest.stack.counters().frames;
    const out = await guest.sh(uploadScript(url, SIZE, 52), 180_000);
    expect(out.trim()).toBe(`${seededSha256(SIZE, 52)} ${SIZE}`);
    const after = guest.stack.counters().frames;
    expect((after.bytesIn - before.bytesIn) / (after.in - before.in)).toBeGreaterThan(FULL_FRAME);
  }, 200_000);

  it("dropped nothing for checksums or lengths", () => {
    const drops = guest.stack.counters().drops;
    for (const reason of Object.keys(drops)) expect(reason).not.toMatch(/checksum|total-length|truncated/);
    expect(guest.tap.stats.drops).toEqual({});
  });
});

describe.skipIf(!env.ok)("offload through the seeded fault injector", () => {
  const size = 8 * 1024 * 1024;
  let guest: StackGuest;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let faults: ReturnType<typeof withFaults>;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer();
    guest = await startStackGuest({
      prefix: "offload-faults",
      tap: { offload: true },
      // A lost super-frame is up to 44 lost segments at once: recovery must still get everything through.
      wrap: (tap) => {
        faults = withFaults(tap, { seed: 20251125, drop: 0.02, duplicate: 0.02, reorder: 0.02 });
        return faults;
      },
    });
    expect(faults.offload).toEqual({ tso: true, csum: true });
    url = `http://${guest.stack.config.hostAddress}:${http.port}`;
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  it("downloads and uploads 8 MB intact", async () => {
    const down = await guest.sh(downloadScript(url, size, 53), 180_000);
    expect(down.split(" ")[0]).toBe(seededSha256(size, 53));
    const up = await guest.sh(uploadScript(url, size, 54), 180_000);
    expect(up.trim()).toBe(`${seededSha256(size, 54)} ${size}`);
    expect(faults.stats.faults.dropped).toBeGreaterThan(0);
  }, 400_000);
});
