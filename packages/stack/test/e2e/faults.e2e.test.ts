/**
 * The stack in this process, its TAP link wrapped in the seeded fault injector (2% of frames
 * dropped, 2% duplicated, 2% reordered, each direction), and a Linux guest configured by hand:
 * downloads and uploads must arrive whole.
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
const SIZE = 8 * 1024 * 1024;

describe.skipIf(!env.ok)("transfers through the seeded fault injector", () => {
  let guest: StackGuest;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let faults: ReturnType<typeof withFaults>;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer();
    guest = await startStackGuest({
      prefix: "faults",
      wrap: (tap) => {
        faults = withFaults(tap, { seed: 20240611, drop: 0.02, duplicate: 0.02, reorder: 0.02 });
        return faults;
      },
    });
    url = `http://${guest.stack.config.hostAddress}:${http.port}`;
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  it("downloads 8 MB intact", async () => {
    const out = await guest.sh(downloadScript(url, SIZE, 41), 180_000);
    expect(out.split(" ")[0]).toBe(seededSha256(SIZE, 41));
  }, 200_000);

  it("uploads 8 MB intact", async () => {
    const out = await guest.sh(uploadScript(url, SIZE, 42), 180_000);
    expect(out.trim()).toBe(`${seededSha256(SIZE, 42)} ${SIZE}`);
  }, 200_000);

  it("really injected every kind of fault", () => {
    const f = faults.stats.faults;
    expect(f.dropped).toBeGreaterThan(0);
    expect(f.duplicated).toBeGreaterThan(0);
    expect(f.reordered).toBeGreaterThan(0);
  });
});
