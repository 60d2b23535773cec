/**
 * The stack in this process, its TAP link wrapped in the seeded fault injector (2% of frames
 * dropped, 2% duplicated, 2% reordered, each direction), and a Linux guest configured by hand:
 * downloads and uploads must arrive whole.
 */
import { createStack, openTap, type Stack, withFaults } from "@desktopd/stack";
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
const SIZE = 8 * 1024 * 1024;
const q = (s: string | number) => `'${String(s).replaceAll("'", `'\\''`)}'`;

describe.skipIf(!env.ok)("transfers through the seeded fault injector", () => {
  let ns: Netns;
  let stack: Stack | undefined;
  let http: Awaited<ReturnType<typeof startHttpServer>>;
  let faults: ReturnType<typeof withFaults>;
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
    ns = await createNetns("faults");
    stack = createStack();
    faults = withFaults(await openTap({ netns: ns.name }), {
      seed: 20240611,
      drop: 0.02,
      duplicate: 0.02,
      reorder: 0.02,
    });
    stack.attach(faults);
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

  it("downloads 8 MB intact", async () => {
    const out = await sh(
      `curl -sS --fail --max-time 150 ${q(`${url}/bytes/${SIZE}/41`)} | sha256sum`,
      180_000,
    );
    expect(out.split(" ")[0]).toBe(seededSha256(SIZE, 41));
  }, 200_000);

  it("uploads 8 MB intact", async () => {
    const out = await sh(
      `${q(process.execPath)} --input-type=module -e ${q(SEEDED_BYTES_PROGRAM)} ${SIZE} 42 | ` +
        `curl -sS --fail --max-time 150 -H 'Expect:' -T - ${q(`${url}/upload`)}`,
      180_000,
    );
    expect(out.trim()).toBe(`${seededSha256(SIZE, 42)} ${SIZE}`);
  }, 200_000);

  it("really injected every kind of fault", () => {
    const f = faults.stats.faults;
    expect(f.dropped).toBeGreaterThan(0);
    expect(f.duplicated).toBeGreaterThan(0);
    expect(f.reordered).toBeGreaterThan(0);
  });
});
