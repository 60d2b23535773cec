/**
 * The command line: commander parses, the commands validate (zod) and run. `runCli` returns
 * the exit code instead of exiting so it can be driven in-process by tests.
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { type CliIo, processIo } from "./commands/io.js";
import {
  DEFAULT_DEMO_NETNS,
  DEFAULT_IFNAME,
  DEFAULT_MTU,
  DEFAULT_SUBNET,
  LOG_LEVELS,
  MAX_MTU,
  MIN_MTU,
  parseDemoOptions,
  parseRunOptions,
} from "./config.js";
import { DesktopdError } from "./errors.js";

// src/ and dist/ both sit next to package.json.
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function addSharedOptions(command: Command): Command {
  return command
    .option("--subnet <cidr>", `guest subnet (default: ${DEFAULT_SUBNET})`)
    .option("--mtu <bytes>", `link MTU, ${MIN_MTU}..${MAX_MTU} (default: ${DEFAULT_MTU})`)
    .option("--pcap <file>", "write every frame on the guest link to a pcap file")
    .option("--no-offload", "turn off checksum offload and TSO on the TAP link (one frame per syscall)")
    .option("--log-level <level>", `${LOG_LEVELS.join("|")}; logs are JSON on stderr (default: info)`)
    .option("--dns-record <name=address>", "fixed A/AAAA record for guests; repeatable", collect)
    .option(
      "--dns-forward <domain=ip[:port]>",
      "send DOMAIN and below to this nameserver; repeatable",
      collect,
    )
    .option("--dns-upstream <ip[:port]>", "nameserver replacing the host's resolution (default: the host's)");
}

export function createProgram(io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command("desktopd")
    .description("Host-style networking for Linux network namespaces through a userspace TCP/IP stack.")
    .version(version())
    // Set before adding commands: subcommands inherit both.
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError("(run desktopd --help for usage)");

  addSharedOptions(
    program
      .command("run")
      .description("attach an existing network namespace: create its NIC and serve it until SIGINT/SIGTERM")
      .requiredOption("--netns <name>", "existing network namespace (ip netns add NAME)")
      .option("--configure", "set the guest's address, default route and resolv.conf as DHCP would")
      .option("--ifname <name>", `name of the guest's NIC (default: ${DEFAULT_IFNAME})`),
  ).action(async (options: Record<string, unknown>) => {
    const config = parseRunOptions(options);
    // Loaded only now: help and option errors need neither the stack nor its native TAP code.
    const { runCommand } = await import("./commands/run.js");
    setExitCode(await runCommand(config, io));
  });

  addSharedOptions(
    program
      .command("demo")
      .description(`create the namespace "${DEFAULT_DEMO_NETNS}", attach and configure it; removed on exit`)
      .option("--netns <name>", `namespace to create (default: ${DEFAULT_DEMO_NETNS})`),
  ).action(async (options: Record<string, unknown>) => {
    const config = parseDemoOptions(options);
    const { demoCommand } = await import("./commands/demo.js");
    setExitCode(await demoCommand(config, io));
  });

  return program;
}

/** Parses `argv` (without node and script) and runs the command; resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode = 0;
  const program = createProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
  } catch (error) {
    // Commander has already printed its message (or the help).
    if (error instanceof CommanderError) return error.exitCode;
    if (DesktopdError.isInstance(error)) {
      io.err(`desktopd: ${error.message}\n`);
      return 1;
    }
    io.err(`desktopd: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return 1;
  }
}
