import type { Family, HostAddress } from "../family.js";

/** One network tool the benchmark compares: it connects an existing netns guest to the host. */
export interface PeerSession {
  /** Address the guest dials to reach the host's loopback: 127.0.0.1 over IPv4, ::1 over IPv6. */
  hostAddress: Record<Family, HostAddress>;
  /** PID of the process that carries the traffic (its VmHWM is the RSS figure). */
  pid: number;
  /** What the peer reported on start (desktopd's ready line), kept in the JSON. */
  note?: string;
  /** The process's V8 heap in use, in bytes, where it is a node process that reports it (desktopd). */
  heapUsed?: () => Promise<number>;
  /** Stops the process; resolves once it has exited. */
  stop(): Promise<void>;
}

/** A TCP port forward host → guest the peer sets up at start: 127.0.0.1:hostPort → guest:guestPort. */
export interface PortForward {
  hostPort: number;
  guestPort: number;
}

export interface PeerStartOptions {
  /** Host → guest TCP forwards to set up (desktopd -p, pasta -t, slirp4netns add_hostfwd). */
  forwards: readonly PortForward[];
  /** Repository root, for paths such as apps/desktopd/dist/cli.js. */
  root: string;
  /** Pass --cpu-prof to node peers; profiles go to bench/results/prof. */
  cpuProf: boolean;
}

export interface Peer {
  readonly name: PeerName;
  /** Human-readable address plan, printed under the table. */
  readonly addressPlan: string;
  /** The guest address the peer configures, to check readiness. */
  readonly guestAddress: string;
  start(netns: string, mtu: number, opts: PeerStartOptions): Promise<PeerSession>;
}

export const peerNames = ["desktopd", "slirp4netns", "pasta"] as const;
export type PeerName = (typeof peerNames)[number];
