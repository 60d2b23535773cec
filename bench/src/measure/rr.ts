/** Request/response latency: 1-byte ping-pong over one TCP connection from the guest to a host echo server. */
import type { Family } from "../family.js";
import { type Figure, failed } from "./figure.js";
import { runGuestScript, WARMUP_SECONDS } from "./guest.js";
import { type HostServer, startEchoServer } from "./hostserver.js";

interface RrReport {
  samples: number;
  medianUs: number;
  p99Us: number;
}

export interface RrFigures {
  median: Figure;
  p99: Figure;
}

export async function measureRr(
  root: string,
  netns: string,
  family: Family,
  hostAddress: string,
  seconds: number,
): Promise<RrFigures> {
  let server: HostServer | undefined;
  try {
    server = await startEchoServer(family);
    const args = [hostAddress, server.port, seconds, WARMUP_SECONDS];
    const timeoutMs = (WARMUP_SECONDS + seconds + 15) * 1000;
    const r = await runGuestScript<RrReport>(root, netns, "rr.mjs", args, timeoutMs);
    const detail = { samples: r.samples };
    return { median: { value: r.medianUs, detail }, p99: { value: r.p99Us, detail } };
  } catch (err) {
    const f = failed(err);
    return { median: f, p99: f };
  } finally {
    await server?.close();
  }
}
