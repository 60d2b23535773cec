/** Peak resident set size (VmHWM from /proc/PID/status) of the process that carries the traffic. */
import { readFile } from "node:fs/promises";
import { type Figure, failed } from "./figure.js";

/** VmHWM in MiB; read before the process is stopped. */
export async function measurePeakRss(pid: number): Promise<Figure> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    if (!m) return failed(`no VmHWM in /proc/${pid}/status`);
    return { value: Number(m[1]) / 1024 };
  } catch (err) {
    return failed(err);
  }
}
