/**
 * UDP throughput and loss over IPv4: iperf3 `-u -l 1400 -b 1G` (1 Gbit/s offered) from the guest
 * to `iperf3 -s` on the host's 127.0.0.1, or from the host with `-R`. Both figures are the
 * receiver's (`end.sum_received`: the server's when the guest sends, the client's with -R); the
 * whole run counts (no -O, the runs are short).
 */
import { type Figure, failed } from "./figure.js";
import { iperfClientArgs, parseIperf, runIperfInNetns, withIperfServer } from "./iperf.js";

/** Offered rate and datagram payload. */
export const udpOffered = { bitrate: "1G", length: 1400 } as const;

export interface UdpFigures {
  /** Received Mbit/s. */
  rate: Figure;
  /** Lost datagrams, % of those sent (as the receiver counts them: gaps in the sequence). */
  loss: Figure;
}

export async function measureUdp(
  netns: string,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
): Promise<UdpFigures> {
  try {
    return await withIperfServer(4, async (port) => {
      const args = iperfClientArgs(hostAddress, port, seconds, reverse, 3000, 0);
      args.push("-u", "-l", String(udpOffered.length), "-b", udpOffered.bitrate);
      const r = await runIperfInNetns(netns, args, seconds);
      const end = parseIperf(r.output, r.exit).end;
      const received = end?.sum_received;
      if (received?.lost_percent === undefined) throw new Error(`iperf3: no UDP summary (${r.exit})`);
      const detail = {
        sentMbps: (end?.sum_sent?.bits_per_second ?? 0) / 1e6,
        packets: received.packets ?? 0,
        lostPackets: received.lost_packets ?? 0,
      };
      return {
        rate: { value: received.bits_per_second / 1e6, detail },
        loss: { value: received.lost_percent, detail },
      };
    });
  } catch (err) {
    const f = failed(err);
    return { rate: f, loss: f };
  }
}
