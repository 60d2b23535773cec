/** One network backend the VM mode compares: it gives qemu a `-netdev` and the guest a way to the host. */
export interface VmPeerSession {
  /** The `-netdev` value for qemu; its id is "n0". */
  netdev: string;
  /** Address the guest dials to reach the host's 127.0.0.1. */
  hostAddress: string;
  /** PID of the process carrying the traffic; undefined when qemu carries it itself. */
  pid?: number;
  /** What the peer reported on start (desktopd's ready line), kept in the JSON. */
  note?: string;
  /** Stops the process; resolves once it has exited. */
  stop(): Promise<void>;
}

export interface VmPeerStartOptions {
  /** Repository root, for apps/desktopd/dist/cli.js. */
  root: string;
  /** Pass --cpu-prof to desktopd's node; profiles go to bench/results/prof. */
  cpuProf: boolean;
  /** A fresh directory for this session's unix sockets, removed afterwards. */
  dir: string;
}

export interface VmPeer {
  readonly name: VmPeerName;
  /** Human-readable address plan, printed under the table. */
  readonly addressPlan: string;
  /** The only MTU the peer can give the guest; sessions at other MTUs are skipped. */
  readonly fixedMtu?: number;
  start(mtu: number, opts: VmPeerStartOptions): Promise<VmPeerSession>;
}

export const vmPeerNames = ["desktopd-stream", "desktopd-dgram", "passt", "qemu-user"] as const;
export type VmPeerName = (typeof vmPeerNames)[number];
