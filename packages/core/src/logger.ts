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
}

const noop = () => {};
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  child: () => silentLogger,
};
