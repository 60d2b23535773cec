/**
 * The CLI's logger on stderr (stdout carries only the ready line and help): readable one-liners
 * when a person watches a terminal, pino JSON lines for machines otherwise.
 * `DESKTOPD_LOG_FORMAT=json|pretty` overrides the guess.
 */
import { isatty } from "node:tty";
import { type Logger, pino } from "pino";
import pretty from "pino-pretty";
import type { LogLevel } from "./config.js";

export type LogFormat = "json" | "pretty";

export function logFormat(fd = 2, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const forced = env.DESKTOPD_LOG_FORMAT;
  if (forced === "json" || forced === "pretty") return forced;
  return isatty(fd) ? "pretty" : "json";
}

export function createLogger(level: LogLevel, fd = 2, format: LogFormat = logFormat(fd)): Logger {
  // Synchronous writes: the CLI calls process.exit after cleanup and must not lose the last lines.
  const stream =
    format === "pretty"
      ? pretty({
          destination: fd,
          sync: true,
          colorize: isatty(fd),
          translateTime: "SYS:HH:MM:ss.l",
          ignore: "pid,hostname,name",
          singleLine: true,
        })
      : pino.destination({ fd, sync: true });
  return pino({ name: "desktopd", level }, stream);
}
