/**
 * A config reload: which keys changed, which services apply them live, which need a restart.
 * The next config is fully validated before anything changes; keys that need a restart keep
 * their running values, so the next reload compares against what really runs.
 */
import type { RunConfig } from "./config.js";
import type { ConfigKey, Service } from "./services/service.js";

export interface ReloadReport {
  /** Why nothing was re-read, when nothing was (no config file). */
  note?: string;
  /** Keys whose value differs from the running config. */
  changed: string[];
  /** Changed keys now in effect. */
  applied: string[];
  /** Changed keys that take effect only when desktopd restarts (they keep their running value). */
  restartNeeded: string[];
  /** What could not be applied, e.g. a published port whose host port is taken. */
  problems: string[];
}

export function changedKeys(running: RunConfig, next: RunConfig): ConfigKey[] {
  const keys = new Set([...Object.keys(running), ...Object.keys(next)] as ConfigKey[]);
  return [...keys].filter((k) => JSON.stringify(running[k]) !== JSON.stringify(next[k]));
}

export async function reloadServices(
  services: readonly Service[],
  running: RunConfig,
  next: RunConfig,
): Promise<{ running: RunConfig; report: ReloadReport }> {
  const changed = changedKeys(running, next);
  const report: ReloadReport = { changed, applied: [], restartNeeded: [], problems: [] };
  const now = { ...running } as Record<ConfigKey, unknown>;
  const claimed = new Set<ConfigKey>();
  for (const service of services) {
    const retried = service.pending?.() ?? [];
    const mine = [...new Set([...changed, ...retried])].filter((k) => service.liveKeys?.includes(k));
    if (mine.length === 0 || !service.reload) continue;
    for (const k of mine) claimed.add(k);
    try {
      report.problems.push(...(await service.reload(next, mine)));
      for (const k of mine) {
        now[k] = next[k];
        if (changed.includes(k)) report.applied.push(k);
      }
    } catch (error) {
      report.problems.push(`${service.name}: ${(error as Error).message ?? String(error)}`);
    }
  }
  report.restartNeeded = changed.filter((k) => !claimed.has(k));
  return { running: now as RunConfig, report };
}
