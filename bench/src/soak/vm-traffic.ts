/**
 * The VM's traffic: rounds of bench/guest/soak-vm.sh on its serial console, one after the other
 * (the console runs one command at a time; inside a round five kinds run at once). The script
 * prints what it saw; this file judges it against what the host knows.
 */
import type { TestVm } from "@desktopd/stack/testing";
import { dnsQueries, dnsVerdict } from "./dns-check.js";
import { seededSha } from "./seeded.js";
import type { Tally } from "./tally.js";
import { vmScript } from "./vm-guest.js";

export interface VmTrafficTargets {
  hostAddress: string;
  gateway: string;
  httpPort: number;
  udpEchoPort: number;
}

const downloadSizes = [256 << 10, 1 << 20, 4 << 20];
const uploadSize = 256 << 10;
const churnPerRound = 20;
const udpPerRound = 10;

export async function vmTrafficLane(
  vm: TestVm,
  t: VmTrafficTargets,
  tally: Tally,
  running: () => boolean,
): Promise<void> {
  for (let round = 0; running(); round++) {
    const token = `v${process.pid}x${round}`;
    const size = downloadSizes[round % downloadSizes.length]!;
    const seed = round % 8;
    const queries = dnsQueries(token, t.hostAddress);
    const args = [t.hostAddress, t.httpPort, t.udpEchoPort, t.gateway, token, size, seed, uploadSize];
    args.push(churnPerRound, udpPerRound, ...queries.map((q) => q.name));
    let output: string;
    try {
      const r = await vm.exec(`sh ${vmScript} ${args.join(" ")}`, 180_000);
      output = r.output;
    } catch (err) {
      const msg = `round ${round}: ${(err as Error).message.split("\n")[0]}`;
      for (const check of ["vm-download", "vm-upload", "vm-churn", "vm-dns", "vm-udp"])
        tally.fail(check, "failed", msg);
      if (await exitedNow(vm)) return;
      continue;
    }
    judgeRound(output, { token, size, seed, queries }, tally);
  }
}

interface RoundPlan {
  token: string;
  size: number;
  seed: number;
  queries: ReturnType<typeof dnsQueries>;
}

/** Turns the script's "@" lines into tally entries; a kind with no line at all failed. */
export function judgeRound(output: string, plan: RoundPlan, tally: Tally): void {
  const lines = output.split("\n").filter((l) => l.startsWith("@"));
  const line = (tag: string) => lines.find((l) => l.startsWith(`@${tag} `) || l === `@${tag}`);
  const fields = (tag: string) => line(tag)?.split(" ").slice(1);

  const dl = fields("DL");
  if (!dl) tally.fail("vm-download", "failed", "no result line");
  else if (dl[0] === "fail") tally.fail("vm-download", "failed", dl.slice(1).join(" "));
  else if (dl[0] === seededSha(plan.size, plan.seed) && Number(dl[1]) === plan.size)
    tally.ok("vm-download", 1, plan.size);
  else tally.fail("vm-download", "wrong", `${plan.size} B seed ${plan.seed}: got ${dl[1]} B sha ${dl[0]}`);

  const ul = fields("UL");
  if (!ul) tally.fail("vm-upload", "failed", "no result line");
  else if (ul[0] === "fail") tally.fail("vm-upload", "failed", ul.slice(1).join(" "));
  else if (ul[2] === ul[0] && ul[3] === ul[1]) tally.ok("vm-upload", 1, Number(ul[1]));
  else tally.fail("vm-upload", "wrong", `sent ${ul[1]} B sha ${ul[0]}, host got ${ul[3]} B sha ${ul[2]}`);

  const churn = fields("CHURN");
  if (!churn) tally.fail("vm-churn", "failed", "no result line", churnPerRound);
  else {
    const [ok = 0, bad = 0, failed = 0] = churn.slice(0, 3).map(Number);
    const err = churn.slice(3).join(" ");
    if (ok > 0) tally.ok("vm-churn", ok);
    if (bad > 0) tally.fail("vm-churn", "wrong", `${bad} wrong /hello answers`, bad);
    if (failed > 0) tally.fail("vm-churn", "failed", `${failed} connections: ${err}`, failed);
  }

  for (const q of plan.queries) {
    const got = lines.find((l) => l.startsWith(`@DNS ${q.name} `))?.split(" ")[2];
    const v = dnsVerdict(q.want, got === "-" ? undefined : got);
    if (v === "ok") tally.ok("vm-dns");
    else tally.fail("vm-dns", v, `${q.name}: want ${q.want}, got ${got ?? "no line"}`);
  }

  const udp = fields("UDP");
  const want = new Set(Array.from({ length: udpPerRound }, (_, i) => `echo:${plan.token}-${i + 1}`));
  const echoes = (udp ?? []).filter((w) => w !== "");
  const good = new Set(echoes.filter((e) => want.has(e)));
  const garbled = echoes.filter((e) => !want.has(e));
  if (good.size > 0) tally.ok("vm-udp", good.size);
  if (garbled.length > 0)
    tally.fail("vm-udp", "wrong", `unexpected echoes: ${garbled.slice(0, 3).join(" ")}`, garbled.length);
  const missing = udpPerRound - good.size;
  if (missing > 0)
    tally.fail("vm-udp", "failed", `${missing} of ${udpPerRound} datagrams not echoed`, missing);
}

async function exitedNow(vm: TestVm): Promise<boolean> {
  return Promise.race([
    vm.exited.then(() => true),
    new Promise<boolean>((r) => setImmediate(() => r(false))),
  ]);
}
