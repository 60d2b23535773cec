/**
 * The command line: commander parses, the commands validate (zod) and run. `runCli` returns
 * the exit code instead of exiting so it can be driven in-process by tests.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { type CliIo, processIo } from "./commands/io.js";
import {
  checkConfigFileOptions,
  DEFAULT_DEMO_NETNS,
  DEFAULT_IFNAME,
  DEFAULT_MTU,
  DEFAULT_SUBNET,
  LOG_LEVELS,
  MAX_MTU,
  MIN_MTU,
  parseDemoOptions,
  parseRunOptions,
  RUN_OPTION_KEYS,
} from "./config.js";
import { mergeOptions, readConfigFile } from "./config-file.js";
import { DesktopdError, InvalidOptionError } from "./errors.js";
import { runtimeDir } from "./runtime-dir.js";

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
    .option(
      "--dns-record <record>",
      "fixed record for guests: NAME=ADDRESS (A/AAAA), or NAME/TYPE=DATA for CNAME, PTR, TXT, " +
        "MX ([PREF ]HOST) and SRV ([PRIO WEIGHT ]PORT TARGET); NAME may be *.zone; repeatable",
      collect,
    )
    .option(
      "--dns-forward <domain=ip[:port]>",
      "send DOMAIN and below to this nameserver; repeatable",
      collect,
    )
    .option("--dns-upstream <ip[:port]>", "nameserver replacing the host's resolution (default: the host's)")
    .option(
      "--dns-host-mode <mode>",
      "the host's resolution: os (A/AAAA through the OS resolver, /etc/hosts and VPN included; " +
        "other types through resolv.conf's nameservers) or nameservers (all through resolv.conf's); default os",
    );
}

export function createProgram(io: CliIo, setExitCode: (code: number) => void): Command {
  const program = new Command("desktopd")
    .description(
      "Host-style networking for Linux VMs and network namespaces through a userspace TCP/IP stack.",
    )
    .version(version())
    // Set before adding commands: subcommands inherit both.
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError("(run desktopd --help for usage)");

  addSharedOptions(
    program
      .command("run")
      .description(
        "serve guests until SIGINT/SIGTERM: VMs over qemu/vfkit sockets or stdio, network namespaces over a TAP " +
          "(with no transport named: listen on a qemu and a vfkit socket in the per-user runtime directory)",
      )
      .option(
        "--config <file>",
        "JSON or YAML file with any of these options (camelCase or --option-style keys); the command line " +
          "wins; SIGHUP or desktopd reload re-reads it",
      )
      .option(
        "--netns <name>",
        "attach an existing network namespace (ip netns add NAME) through a TAP device",
      )
      .option(
        "--configure",
        "with --netns: set the guest's address, default route and resolv.conf as DHCP would",
      )
      .option("--ifname <name>", `with --netns: name of the guest's NIC (default: ${DEFAULT_IFNAME})`)
      .option(
        "--qemu-socket <address>",
        "listen for qemu -netdev stream (a unix path) or -netdev socket (tcp:HOST:PORT); repeatable",
        collect,
      )
      .option(
        "--qemu-connect <address>",
        "connect to a qemu listening with server=on (unix path or tcp:HOST:PORT); repeatable",
        collect,
      )
      .option(
        "--vfkit-socket <path>",
        "bind a unix datagram socket for vfkit/krunkit or qemu -netdev dgram; repeatable",
        collect,
      )
      .option(
        "--stdio",
        "a guest link on stdin/stdout with qemu stream framing (logs and the ready line go to stderr)",
      )
      .option(
        "-p, --publish <spec>",
        "publish a guest port on the host: [host_ip:][host_port[-end]:]container_port[-end][/tcp|/udp]; " +
          "repeatable; host_ip defaults to 127.0.0.1",
        collect,
      )
      .option(
        "--publish-host-ip <ip>",
        "host address of publish specs that name none (default 127.0.0.1; Docker's default is 0.0.0.0)",
      )
      .option(
        "--publish-target <ip>",
        "guest address (IPv4 or IPv6) published ports lead to (default: the namespace's lease, else the first guest's)",
      )
      .option(
        "--egress <rule>",
        "egress rule, first match wins: allow|deny [tcp|udp] TARGET[:PORTS] (TARGET: *, address, CIDR or DNS name; " +
          "an IPv6 one bracketed before :PORTS); " +
          "repeatable; without a match the host address reaches the host's loopback, other loopback addresses " +
          "and the guest subnet are refused, the rest goes out",
        collect,
      )
      .option("--no-host-loopback", "the host address does not reach the host's 127.0.0.1")
      .option(
        "--no-source-guard",
        "let guests send from any address of the subnet (default: only their lease, reservation or first claim)",
      )
      .option(
        "--udp-timeout <seconds>",
        "close UDP flows that saw no reply after this long idle (default 120)",
      )
      .option(
        "--udp-stream-timeout <seconds>",
        "close UDP flows that saw both directions after this long idle (default 180)",
      )
      .option(
        "--tcp-keepalive <seconds>",
        "keepalive on host sockets after this long idle; 0 off (default 60)",
      )
      .option(
        "--guest-keepalive <seconds>",
        "keepalive towards guests after this long idle, to notice a vanished guest; 0 off (default 600)",
      )
      .option(
        "--fin-wait2-timeout <seconds>",
        "how long a connection nobody reads any more waits for the guest's FIN (default 60)",
      )
      .option("--buffer-memory <MiB>", "memory for buffered TCP data, all guests (default 256)")
      .option("--buffer-memory-per-guest <MiB>", "memory for buffered TCP data, one guest (default 128)")
      .option(
        "--control <path>",
        "serve the control API (desktopd status, publish, flows...) on this unix socket " +
          "(default: $DESKTOPD_CONTROL, else control.sock in the per-user runtime directory, or " +
          "control-NAME.sock beside it when another desktopd serves there; see desktopd ls)",
      )
      .option(
        "--metrics <address:port>",
        "also serve Prometheus metrics on this loopback TCP address (GET /metrics; always on the control socket)",
      )
      .option(
        "--ui <address:port>",
        "serve the status page on this loopback TCP address; its URL with a random token is printed",
      )
      .option(
        "--upstream-proxy <url>",
        "upstream for the guests' proxied HTTP and HTTPS: http://, https://, socks5:// or socks5h:// URL " +
          "(user:password@ allowed), or direct (default: $HTTPS_PROXY/$HTTP_PROXY/$ALL_PROXY of this process)",
      )
      .option(
        "--no-proxy <list>",
        "destinations that bypass the upstream: names (and their subdomains), addresses, CIDRs, :port " +
          "(default: $NO_PROXY of this process)",
      )
      .option(
        "--proxy-pac <url-or-path>",
        "PAC file choosing the upstream per destination (PROXY, HTTPS, SOCKS5, DIRECT, with fallbacks), run sandboxed",
      )
      .option(
        "--proxy-allow <list>",
        "destinations the guests' proxy serves (NO_PROXY syntax); others are answered 403 (default: all)",
      )
      .option(
        "--proxy-connect-ports <ports>",
        "ports the guests' proxy lets CONNECT reach, e.g. 443 (default: any)",
      )
      .option(
        "--transparent-proxy-ports <ports>",
        "guest ports sent through the upstream by Host or SNI while one is set, e.g. 80,443 (default), or none",
      )
      .option(
        "--socks5 <address:port>",
        "serve SOCKS5 on this loopback address; its connections reach guest addresses (no published port needed)",
      )
      .option("--socks5-auth <user:password>", "the username and password the SOCKS5 server requires")
      .option(
        "--no-icmp-relay",
        "do not relay guests' ping beyond the gateway (relayed through a raw ICMP socket when desktopd runs as root)",
      )
      .option(
        "--no-ipv6",
        "no IPv6 side (router advertisements, neighbour discovery, echo); guests' IPv6 frames are dropped",
      )
      .option(
        "--ipv6-prefix <prefix>",
        "the guests' IPv6 /64 (default fdc4:f303:9324::/64, gateway ::1, host ::254)",
      )
      .option("--no-autoforward", "do not publish guests' listening ports automatically")
      .option(
        "--autoforward-rule <rule>",
        "automatic forward rule, first match wins: ignore|forward [tcp|udp] [PORTS] [guest IP] [to [HOST_IP:]PORT|+OFFSET]; " +
          "repeatable; without a match a guest port is published on 127.0.0.1 at the same port",
        collect,
      )
      .option(
        "--ssh-auth-sock <path>",
        "the host SSH agent guests reach at the gateway's port 6022 (default: $SSH_AUTH_SOCK; off without one)",
      )
      .option("--no-ssh-agent", "do not relay guests to the host's SSH agent")
      .option(
        "--ssh-agent-keys <fingerprints>",
        "only these keys (SHA256:... as ssh-add -l prints them, comma-separated) are visible and usable in guests",
      )
      .option(
        "--ssh-agent-sign-only",
        "guests may only list keys and sign: adding, removing, locking and extensions are refused",
      ),
  ).action(async (options: Record<string, unknown>, command: Command) => {
    const { config: file, ...cli } = givenOptions(options, command);
    // Commander reads --no-proxy LIST as the negation of a --proxy option: it is NO_PROXY's list.
    if (typeof cli.proxy === "string") cli.noProxy = cli.proxy;
    delete cli.proxy;
    const envControl = process.env.DESKTOPD_CONTROL;
    if (cli.control === undefined && envControl) cli.control = envControl;
    // Read again at each reload (SIGHUP, desktopd reload): the file under the command line.
    const load = () => {
      if (typeof file !== "string") return cli;
      const fromFile = readConfigFile(file, RUN_OPTION_KEYS);
      checkConfigFileOptions(file, fromFile);
      return mergeOptions(fromFile, cli);
    };
    const config = parseRunOptions(load());
    // Loaded only now: help and option errors need neither the stack nor its native TAP code.
    const { runCommand } = await import("./commands/run.js");
    setExitCode(
      await runCommand(config, io, {
        defaultControl: join(runtimeDir(), "control.sock"),
        ...(typeof file === "string" ? { reloadOptions: load } : {}),
      }),
    );
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

  const controlOption = () =>
    new Option("--control <path>", "the daemon's control socket")
      .env("DESKTOPD_CONTROL")
      .default(join(runtimeDir(), "control.sock"), "control.sock in the per-user runtime directory");
  const control = async () => import("./commands/control.js");

  program
    .command("status")
    .description("show a running daemon's guest links, leases, published ports and counters")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).statusCommand(o, io));
    });

  const publish = program.command("publish").description("publish guest ports on a running daemon");
  publish
    .command("ls")
    .description("list published ports with live stats")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).publishCommand("ls", undefined, o, io));
    });
  publish
    .command("add <spec>")
    .description("publish a guest port: [host_ip:][host_port[-end]:]container_port[-end][/tcp|/udp]")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (spec: string, o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).publishCommand("add", spec, o, io));
    });
  publish
    .command("rm <id-or-spec>")
    .description("unpublish by id (tcp/127.0.0.1:8080) or by the spec it was added with")
    .addOption(controlOption())
    .option("--close-connections", "also close its open connections")
    .option("--json", "print the daemon's JSON answer")
    .action(async (id: string, o: { control: string; json?: boolean; closeConnections?: boolean }) => {
      setExitCode(await (await control()).publishCommand("rm", id, o, io));
    });

  program
    .command("events")
    .description(
      "follow a running daemon: guest links, published ports, their connections and failed dials, a line each",
    )
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON lines")
    .action(async (o: { control: string; json?: boolean }) => {
      const stop = new AbortController();
      const interrupted = () => stop.abort();
      process.once("SIGINT", interrupted);
      try {
        setExitCode(await (await control()).eventsCommand(o, io, stop.signal));
      } finally {
        process.off("SIGINT", interrupted);
      }
    });

  program
    .command("flows")
    .description(
      "every open TCP and UDP flow: guest and remote endpoints, state, bytes each way, age, idle, service",
    )
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).flowsCommand(o, io));
    });

  program
    .command("metrics")
    .description("print a running daemon's Prometheus metrics (GET /metrics)")
    .addOption(controlOption())
    .action(async (o: { control: string }) => {
      setExitCode(await (await control()).metricsCommand(o, io));
    });

  program
    .command("reload")
    .description(
      "make a running daemon re-read its config file (as SIGHUP does): what changed, what needs a restart",
    )
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).reloadCommand(o, io));
    });

  const proxy = program
    .command("proxy")
    .description("the guests' proxy: the upstream it uses, and the environment that points guests at it");
  proxy
    .command("get")
    .description(
      "the upstream in use and where it came from (API, config or environment), ports and counters",
    )
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).proxyCommand("get", {}, o, io));
    });
  proxy
    .command("set [url]")
    .description(
      "use this upstream from now on (http://, https://, socks5://, socks5h:// or direct); open connections keep theirs",
    )
    .addOption(controlOption())
    .option("--pac <url-or-path>", "a PAC file choosing the upstream per destination")
    .option("--no-proxy <list>", "destinations that bypass it (NO_PROXY syntax)")
    .option("--json", "print the daemon's JSON answer")
    .action(
      async (
        upstream: string | undefined,
        o: { control: string; json?: boolean; proxy?: string | boolean; pac?: string },
      ) => {
        if (upstream === undefined && o.pac === undefined) {
          throw new InvalidOptionError("proxy set: give an upstream URL (or direct), --pac, or both");
        }
        const noProxy = typeof o.proxy === "string" ? o.proxy : undefined;
        setExitCode(await (await control()).proxyCommand("set", { upstream, noProxy, pac: o.pac }, o, io));
      },
    );
  proxy
    .command("unset")
    .description("back to the config's upstream, or the daemon's environment")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).proxyCommand("unset", {}, o, io));
    });
  proxy
    .command("env")
    .description(
      "HTTP_PROXY, HTTPS_PROXY and NO_PROXY (both cases) for a guest shell or container, KEY=VALUE lines",
    )
    .addOption(controlOption())
    .option("--json", "print JSON")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).proxyCommand("env", {}, o, io));
    });

  const autoforward = program
    .command("autoforward")
    .description("guests' listening ports, published on the host as they open (rules first match wins)");
  autoforward
    .command("ls")
    .description(
      "the rules, and each automatic forward: published, waiting for its host port, or held by a -p",
    )
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).autoforwardCommand("ls", {}, o, io));
    });
  autoforward
    .command("add <rule...>")
    .description(
      "add a rule: ignore|forward [tcp|udp] [PORTS] [guest IP] [to [HOST_IP:]PORT|+OFFSET], e.g. ignore 22, forward 3000-3999 to +10000",
    )
    .addOption(controlOption())
    .option("--position <n>", "insert as the n-th rule (default: last)")
    .option("--json", "print the daemon's JSON answer")
    .action(async (words: string[], o: { control: string; json?: boolean; position?: string }) => {
      const position = o.position === undefined ? undefined : wholeNumber("--position", o.position);
      setExitCode(
        await (await control()).autoforwardCommand("add", { rule: words.join(" "), position }, o, io),
      );
    });
  autoforward
    .command("rm <id>")
    .description("remove the rule with this id (see autoforward ls)")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (id: string, o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).autoforwardCommand("rm", { id }, o, io));
    });
  autoforward
    .command("guest-command")
    .description("the shell line a VM runs to report its listeners (POSIX sh, awk, nc; busybox has them)")
    .addOption(controlOption())
    .action(async (o: { control: string }) => {
      setExitCode(await (await control()).autoforwardCommand("guest-command", {}, o, io));
    });

  program
    .command("ssh-agent")
    .description("the host's SSH agent in guests")
    .command("guest-command")
    .description(
      "print what a guest runs to serve /run/host-services/ssh-auth.sock: a socat line, or the Node bin",
    )
    .addOption(controlOption())
    .option("--socket <path>", "the socket in the guest (default /run/host-services/ssh-auth.sock)")
    .option("--mode <octal>", "its permissions (default 666: every user of the guest)")
    .action(async (o: { control: string; socket?: string; mode?: string }) => {
      setExitCode(await (await control()).sshAgentGuestCommand(o, io));
    });

  program
    .command("ls")
    .description("list the daemons serving a control socket in the per-user runtime directory")
    .option("--json", "print JSON")
    .action(async (o: { json?: boolean }) => {
      setExitCode(await (await control()).lsCommand(runtimeDir(), o, io));
    });

  const egress = program
    .command("egress")
    .description("which destinations guests may reach through the host (rules, first match wins)");
  egress
    .command("ls")
    .description("list the rules with how many flows each decided, and the defaults after them")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).egressCommand("ls", {}, o, io));
    });
  egress
    .command("add <rule...>")
    .description(
      'add a rule: allow|deny [tcp|udp] TARGET[:PORTS]; TARGET is *, an address, a CIDR or a DNS name ("example.com", "*.example.com", ".example.com")',
    )
    .addOption(controlOption())
    .option("--position <n>", "insert as the n-th rule (default: last)")
    .option("--json", "print the daemon's JSON answer")
    .action(async (words: string[], o: { control: string; json?: boolean; position?: string }) => {
      const position = o.position === undefined ? undefined : wholeNumber("--position", o.position);
      setExitCode(await (await control()).egressCommand("add", { rule: words.join(" "), position }, o, io));
    });
  egress
    .command("rm <id>")
    .description("remove the rule with this id (see egress ls)")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (id: string, o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).egressCommand("rm", { id }, o, io));
    });

  const dns = program.command("dns").description("the guests' DNS server of a running daemon");
  const names = dns.command("names").description("names registered for guests (containers, VMs)");
  names
    .command("ls")
    .description("list registered names")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).dnsNamesCommand("ls", {}, o, io));
    });
  names
    .command("add <name> <address>")
    .description("answer NAME with ADDRESS for guests, and PTR for ADDRESS with NAME")
    .addOption(controlOption())
    .option("--ttl <seconds>", "lapse after this many seconds unless added again (default: until removed)")
    .option("--json", "print the daemon's JSON answer")
    .action(async (name: string, address: string, o: { control: string; json?: boolean; ttl?: string }) => {
      const ttl = o.ttl === undefined ? undefined : wholeNumber("--ttl", o.ttl);
      setExitCode(await (await control()).dnsNamesCommand("add", { name, address, ttl }, o, io));
    });
  names
    .command("rm <name> [address]")
    .description("remove one address of NAME, or all of them")
    .addOption(controlOption())
    .option("--json", "print the daemon's JSON answer")
    .action(async (name: string, address: string | undefined, o: { control: string; json?: boolean }) => {
      setExitCode(await (await control()).dnsNamesCommand("rm", { name, address }, o, io));
    });
  dns
    .command("log")
    .description("the most recent queries: client, name, type, answer, layer that answered, latency")
    .addOption(controlOption())
    .option("--limit <n>", "at most this many (default 100)")
    .option("--json", "print the daemon's JSON answer")
    .action(async (o: { control: string; json?: boolean; limit?: string }) => {
      const limit = o.limit === undefined ? undefined : wholeNumber("--limit", o.limit);
      setExitCode(await (await control()).dnsLogCommand({ ...o, limit }, io));
    });

  return program;
}

function wholeNumber(option: string, text: string): number {
  if (!/^[1-9]\d{0,8}$/.test(text))
    throw new InvalidOptionError(`${option}: "${text}" is not a whole number ≥ 1`);
  return Number(text);
}

/** Only what the user typed: commander's own defaults (such as --no-offload's) must not hide the file's values. */
function givenOptions(options: Record<string, unknown>, command: Command): Record<string, unknown> {
  const given: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (command.getOptionValueSource(key) !== "default") given[key] = value;
  }
  return given;
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
