/**
 * A Linux guest in a fresh network namespace attached to a stack running in this process —
 * for tests of the library itself, without the daemon. Torn down by `close()`.
 */

import type { FrameTransport } from "@desktopd/core";
import { createStack, type Stack, type StackOptions } from "../stack.js";
import { openTap, type TapOptions, type TapTransport } from "../transport/tap.js";
import { createNetns, type Netns } from "./netns.js";

export interface StackGuestOptions {
  /** Namespace name prefix. */
  prefix: string;
  stack?: StackOptions;
  tap?: Omit<TapOptions, "netns">;
  /** Decorates the TAP before the stack gets it (fault injector, pcap...). */
  wrap?: (tap: TapTransport) => FrameTransport;
}

export interface StackGuest {
  readonly ns: Netns;
  readonly stack: Stack;
  readonly tap: TapTransport;
  /** Runs `bash -o pipefail -c script` in the guest; rejects with stderr and the stack's counters unless it exits 0. */
  sh(script: string, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

/** Configures the guest by hand (first lease address, default route via the gateway). */
export async function startStackGuest(o: StackGuestOptions): Promise<StackGuest> {
  const ns = await createNetns(o.prefix);
  let stack: Stack | undefined;
  try {
    stack = createStack(o.stack);
    const tap = await openTap({ ...o.tap, netns: ns.name });
    stack.attach(o.wrap ? o.wrap(tap) : tap);
    const s = stack;
    const sh = async (script: string, timeoutMs = 60_000) => {
      const r = await ns.exec("bash", ["-o", "pipefail", "-c", script], { timeoutMs });
      if (r.code !== 0) {
        throw new Error(`failed (code ${r.code}): ${script}\n${r.stderr}\n${JSON.stringify(s.counters())}`);
      }
      return r.stdout;
    };
    const { firstLease, prefixLength, gateway } = stack.config;
    await sh(
      `ip link set eth0 up && ip addr add ${firstLease}/${prefixLength} dev eth0 && ip route add default via ${gateway}`,
    );
    return {
      ns,
      stack,
      tap,
      sh,
      async close() {
        try {
          await s.close();
        } finally {
          await ns.remove();
        }
      },
    };
  } catch (e) {
    await stack?.close();
    await ns.remove();
    throw e;
  }
}
