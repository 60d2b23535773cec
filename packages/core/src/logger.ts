/**
 * The logger every package takes: the subset of pino they use, `child()` included, so a
 * package tags its lines (`logger.child({ component: "dns" })`) and the app passes one pino
 * instance down. Libraries never write to the console themselves.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** A logger that adds `bindings` to every line. */
  child(bindings: object): Logger;
  /**
   * Whether lines of `level` are written (pino has it). Callers build costly debug lines only
   * when it says so; a logger without it is taken to write everything.
   */
  isLevelEnabled?(level: "debug" | "info" | "warn" | "error"): boolean;
}

/** Whether `log` writes debug lines: worth building one that costs something. */
export function debugEnabled(log: Logger): boolean {
  return log.isLevelEnabled?.("debug") ?? true;
}

const noop = () => {};
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
