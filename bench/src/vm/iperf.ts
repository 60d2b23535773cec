/** iperf3 throughput with the client in the VM (on its serial console) and the server on the host's 127.0.0.1. */
import type { TestVm } from "@desktopd/stack/testing";
import type { Figure } from "../measure/figure.js";
import { measureIperfWith } from "../measure/iperf.js";

/** Where the image carries iperf3 (the host's binary, copied with its libraries). */
export const guestIperf3 = "/usr/bin/iperf3";

export function measureVmIperf(
  vm: TestVm,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
): Promise<Figure> {
  // TCG is slow to start a process and to connect: generous limits.
  return measureIperfWith(4, hostAddress, seconds, reverse, 15_000, async (client) => {
    const r = await vm.exec([guestIperf3, ...client].join(" "), (seconds + 90) * 1000);
    return { output: r.output, exit: `exit ${r.code}: ${r.output.trim().split("\n").slice(-2).join(" | ")}` };
  });
}
