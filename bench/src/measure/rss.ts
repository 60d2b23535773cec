/** Resident set size of the process that carries the traffic, from /proc/PID/status. */
import { readFile, writeFile } from "node:fs/promises";
import { type Figure, failed } from "./figure.js";

/** One `kB` field of /proc/PID/status (VmHWM, VmRSS), in MiB. */
export async function statusMiB(pid: number, field: "VmHWM" | "VmRSS"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** VmHWM in MiB; read before the process is stopped. */
export async function measurePeakRss(pid: number): Promise<Figure> {
  try {
    return { value: await statusMiB(pid, "VmHWM") };
  } catch (err) {
    return failed(err);
  }
}

/** Resets VmHWM to the current RSS (`5` to /proc/PID/clear_refs, Linux 4.0+); false where refused. */
export async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
