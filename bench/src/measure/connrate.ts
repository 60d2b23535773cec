/** TCP connections per second: the guest opens and closes connections (small concurrency) to a host server. */
import type { Family } from "../family.js";
import { type Figure, failed } from "./figure.js";
import { runGuestScript, WARMUP_SECONDS } from "./guest.js";
import { type HostServer, startAcceptCloseServer } from "./hostserver.js";

export const connrateConcurrency = 8;

interface ConnrateReport {
  connections: number;
  errors: number;
  seconds: number;
  perSecond: number;
  firstError?: string;
}

export async function measureConnrate(
  root: string,
  netns: string,
  family: Family,
  hostAddress: string,
  seconds: number,
): Promise<Figure> {
  let server: HostServer | undefined;
  try {
    server = await startAcceptCloseServer(family);
    const args = [hostAddress, server.port, seconds, connrateConcurrency, WARMUP_SECONDS];
    const timeoutMs = (WARMUP_SECONDS + seconds + 15) * 1000;
    const r = await runGuestScript<ConnrateReport>(root, netns, "connrate.mjs", args, timeoutMs);
    if (r.connections === 0)
      return failed(`no connection completed${r.firstError ? `: ${r.firstError}` : ""}`);
    return {
      value: r.perSecond,
      detail: { connections: r.connections, errors: r.errors, seconds: r.seconds },
    };
  } catch (err) {
    return failed(err);
  } finally {
    await server?.close();
  }
}
