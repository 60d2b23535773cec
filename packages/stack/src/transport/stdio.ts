/**
 * A guest link on this process's stdin and stdout, with qemu's stream framing: for a VMM wrapper
 * or `ssh host desktopd run --stdio` to spawn. Nothing else may write to stdout then.
 */
import type { Readable, Writable } from "node:stream";
import type { FrameTransport } from "@desktopd/core";
import { type StreamTransportOptions, streamTransport } from "./stream.js";

export function stdioTransport(
  options: Partial<StreamTransportOptions> & { stdin?: Readable; stdout?: Writable } = {},
): FrameTransport {
  const { stdin = process.stdin, stdout = process.stdout, ...rest } = options;
  return streamTransport(stdin, stdout, { name: "stdio", ...rest });
}
