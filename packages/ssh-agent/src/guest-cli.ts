/**
 * `desktopd-ssh-agent guest [--socket PATH] [--host ADDR:PORT] [--mode OCTAL]`: the guest side,
 * bundled into one file with Node built-ins only. `desktopd-ssh-agent command` prints the socat
 * equivalent. Runs until SIGINT or SIGTERM, then removes its socket.
 */
import { parseArgs } from "node:util";
import { DEFAULT_GATEWAY, GUEST_SOCKET, guestCommand, SSH_AGENT_PORT, startGuestRelay } from "./guest.js";

const USAGE = `usage: desktopd-ssh-agent guest [--socket PATH] [--host ADDR:PORT] [--mode OCTAL]
       desktopd-ssh-agent command [same options]   print the socat line that does the same
  --socket  where guests find the agent (default ${GUEST_SOCKET}; SSH_AUTH_SOCK=that path)
  --host    desktopd's relay (default ${DEFAULT_GATEWAY}:${SSH_AGENT_PORT}, the gateway)
  --mode    the socket's permissions (default 666: every user of the guest)`;

function fail(message: string): never {
  process.stderr.write(`desktopd-ssh-agent: ${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: {
        socket: { type: "string" },
        host: { type: "string" },
        mode: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const action = positionals[0];
  if (action !== "guest" && action !== "command") fail(`unknown command "${action ?? ""}"`);
  const hostText = (values.host as string | undefined) ?? `${DEFAULT_GATEWAY}:${SSH_AGENT_PORT}`;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(hostText);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) fail(`--host: "${hostText}" is not ADDR:PORT`);
  const modeText = (values.mode as string | undefined) ?? "666";
  if (!/^[0-7]{3,4}$/.test(modeText)) fail(`--mode: "${modeText}" is not octal permissions (e.g. 660)`);
  const options = {
    socket: (values.socket as string | undefined) ?? GUEST_SOCKET,
    host: m[1] ?? m[2]!,
    port,
    mode: Number.parseInt(modeText, 8),
  };
  if (action === "command") {
    process.stdout.write(`${guestCommand(options)}\n`);
    return;
  }
  let relay: Awaited<ReturnType<typeof startGuestRelay>>;
  try {
    relay = await startGuestRelay(options);
  } catch (error) {
    process.stderr.write(`desktopd-ssh-agent: ${(error as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(
    `desktopd-ssh-agent: serving ${relay.socket} -> ${relay.target} (export SSH_AUTH_SOCK=${relay.socket})\n`,
  );
  const stop = () => {
    relay.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

void main();
