/**
 * The stack as a Dialer (what port forwarding uses to reach into a guest) runs the shared Dialer
 * compliance suite against echo servers (socat) inside a real Linux guest.
 */
import { dialerCompliance } from "@desktopd/core/testing";
import {
  haveRootAndNetns,
  missingCommands,
  type StackGuest,
  skipBecause,
  startStackGuest,
  waitForListener,
} from "@desktopd/stack/testing";
import { afterAll, describe } from "vitest";

const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("socat"));

describe.skipIf(!ready)("the stack as a Dialer", () => {
  let guest: StackGuest | undefined;
  afterAll(async () => {
    await guest?.close();
  });

  dialerCompliance("stack (into a netns guest)", async () => {
    if (!guest) {
      guest = await startStackGuest({ prefix: "dialc" });
      // Detached from the shell's output, or the shell would wait for them.
      await guest.sh(
        "socat TCP-LISTEN:7000,fork,reuseaddr EXEC:cat >/dev/null 2>&1 & " +
          "socat UDP-RECVFROM:7001,fork EXEC:cat >/dev/null 2>&1 &",
      );
      await waitForListener(guest.ns, "t", 7000);
      await waitForListener(guest.ns, "u", 7001);
    }
    const g = guest;
    return {
      dialer: g.stack,
      ip: g.stack.config.firstLease,
      echoPort: 7000,
      udpEchoPort: 7001,
      closedPort: 7002,
      close: async () => {},
    };
  });
});
