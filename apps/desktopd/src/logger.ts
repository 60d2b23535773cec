/** The CLI's logger: pino JSON lines on stderr, so stdout carries only the ready line and help. */
import { type Logger, pino } from "pino";
import type { LogLevel } from "./config.js";

export function createLogger(level: LogLevel, fd = 2): Logger {
  // Synchronous writes: the CLI calls process.exit after cleanup and must not lose the last lines.
  return pino({ name: "desktopd", level }, pino.destination({ fd, sync: true }));
}
