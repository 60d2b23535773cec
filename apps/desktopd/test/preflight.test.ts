import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NetnsNotFoundError, NotRootError, TunUnavailableError } from "../src/errors.js";
import { checkNetns, checkRoot, checkTun } from "../src/preflight.js";

describe("preflight", () => {
  it("refuses a non-root user and accepts root", () => {
    expect(() => checkRoot(1000)).toThrow(NotRootError);
    expect(() => checkRoot(1000)).toThrow(/root is required/);
    expect(() => checkRoot(0)).not.toThrow();
  });

  it("reports a missing TUN device", async () => {
    await expect(checkTun("/nonexistent/dev/net/tun")).rejects.toBeInstanceOf(TunUnavailableError);
  });

  it("finds a namespace pinned in the run directory and names a missing one", async () => {
    const run = await mkdtemp(join(tmpdir(), "dtd-netns-"));
    try {
      await writeFile(join(run, "present"), "");
      await expect(checkNetns("present", run)).resolves.toBeUndefined();
      const error = await checkNetns("absent", run).catch((e: unknown) => e);
      expect(NetnsNotFoundError.isInstance(error)).toBe(true);
      expect((error as Error).message).toBe(
        'network namespace "absent" does not exist (create it with: ip netns add absent)',
      );
    } finally {
      await rm(run, { recursive: true, force: true });
    }
  });
});
