/**
 * The host's SSH agent in guests, with OpenSSH on every side: ssh-agent on the host holding an
 * ed25519 and an RSA key (their files deleted once added: only the agent can sign), sshd on host
 * loopback that accepts only those keys, and in a netns guest the bin `desktopd-ssh-agent guest`
 * serving the socket that ssh-add, ssh and ssh-keygen -Y sign use. Then the policy from a
 * reloaded config, a missing host agent, garbage from the guest, 20 signers at once, and a VM
 * running the socat line `desktopd ssh-agent guest-command` prints.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  bootVm,
  haveRootAndNetns,
  missingCommands,
  skipBecause,
  type TestVm,
  vmUnavailableReason,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { watchEvents } from "../src/control/client.js";
import { cli } from "./support/cli.js";
import { type Guest, q, startGuest } from "./support/guest.js";
import { freePort, waitForPort } from "./support/upstreams.js";

const run = promisify(execFile);
const env = haveRootAndNetns();
const ready =
  env.ok &&
  !skipBecause(missingCommands("ssh-agent", "ssh-add", "ssh-keygen", "ssh", "socat", "/usr/sbin/sshd"));
const GUEST_BIN = fileURLToPath(
  new URL("../../../packages/ssh-agent/bin/desktopd-ssh-agent.js", import.meta.url),
);

describe.skipIf(!ready)("the host's SSH agent in guests", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-ssh-"));
  const control = join(dir, "control.sock");
  const config = join(dir, "desktopd.yaml");
  const qemuSock = join(dir, "vm.sock");
  const agentSock = join(dir, "agent.sock");
  const guestSock = join(dir, "guest", "ssh-auth.sock");
  const keys = { ed: join(dir, "id_ed25519"), rsa: join(dir, "id_rsa") };
  const fp = { ed: "", rsa: "" };
  const children: ChildProcess[] = [];
  let guest: Guest;
  let sshPort: number;

  const inGuest = (script: string, timeoutMs?: number) =>
    guest.sh(`export SSH_AUTH_SOCK=${q(guestSock)}; ${script}`, timeoutMs);
  const ctl = (...args: string[]) => cli(...args, "--control", control);
  const login = () =>
    inGuest(
      `ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ` +
        `-o PreferredAuthentications=publickey -p ${sshPort} root@192.168.65.254 echo logged-in`,
      30_000,
    );
  const reloadWith = async (yaml: string) => {
    writeFileSync(config, yaml);
    const r = await ctl("reload", "--json");
    expect(r.code, r.err).toBe(0);
    return JSON.parse(r.out) as { applied: string[] };
  };

  beforeAll(async () => {
    for (const [k, type] of [
      ["ed", ["-t", "ed25519"]],
      ["rsa", ["-t", "rsa", "-b", "2048"]],
    ] as const) {
      execFileSync("ssh-keygen", ["-q", ...type, "-N", "", "-C", `${k}-key`, "-f", keys[k]]);
      fp[k] = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", `${keys[k]}.pub`])
        .toString()
        .split(" ")[1]!;
    }
    const agent = spawn("ssh-agent", ["-D", "-a", agentSock], { stdio: "ignore" });
    children.push(agent);
    for (let i = 0; i < 100 && !existsSync(agentSock); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync("ssh-add", [keys.ed, keys.rsa], {
      env: { ...process.env, SSH_AUTH_SOCK: agentSock },
      stdio: "ignore",
    });
    rmSync(keys.ed);
    rmSync(keys.rsa);

    // sshd on host loopback, accepting the two agent keys and nothing else.
    sshPort = await freePort();
    const hostKey = join(dir, "host_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    const authorized = join(dir, "authorized_keys");
    writeFileSync(
      authorized,
      `${readFileSync(`${keys.ed}.pub`, "utf8")}${readFileSync(`${keys.rsa}.pub`, "utf8")}`,
    );
    const sshdConfig = join(dir, "sshd_config");
    writeFileSync(
      sshdConfig,
      [
        `Port ${sshPort}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorized}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        `PidFile ${join(dir, "sshd.pid")}`,
        "",
      ].join("\n"),
    );
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    children.push(spawn("/usr/sbin/sshd", ["-D", "-e", "-f", sshdConfig], { stdio: "ignore" }));
    await waitForPort(sshPort);

    writeFileSync(config, "log-level: info\n");
    guest = await startGuest("sshagent", {
      configure: true,
      env: { SSH_AUTH_SOCK: agentSock },
      args: ["--control", control, "--config", config, "--qemu-socket", qemuSock],
    });
    // The guest side, as a guest with Node runs it: the committed bin of @desktopd/ssh-agent.
    const relay = guest.ns.spawn(process.execPath, [GUEST_BIN, "guest", "--socket", guestSock]);
    await new Promise<void>((resolve, reject) => {
      relay.stdout?.on("data", (b: Buffer) => b.toString().includes("serving") && resolve());
      relay.once("exit", (code) => reject(new Error(`desktopd-ssh-agent guest exited with ${code}`)));
    });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      for (const c of children) c.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("lists the host's keys in the guest, and status shows the relay", async () => {
    const listed = await inGuest("ssh-add -l");
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(fp.ed);
    expect(listed.stdout).toContain(fp.rsa);
    // Usable by any user of the guest, as Docker Desktop's root-owned socket is not.
    expect((await guest.shOk(`stat -c %a ${q(guestSock)}`)).trim()).toBe("666");
    const status = await ctl("status");
    expect(status.out).toContain(`ssh agent 192.168.65.1:6022 -> ${agentSock}`);
  });

  it("logs in to sshd with a key only the forwarded agent holds, each signature an event and a log line", async () => {
    const stop = new AbortController();
    const events: string[] = [];
    const watching = watchEvents(control, (line) => events.push(line), stop.signal).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    const r = await login();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("logged-in");
    await new Promise((r) => setTimeout(r, 300));
    stop.abort();
    await watching;
    const signed = events.map((l) => JSON.parse(l)).filter((e) => e.type === "ssh-agent-sign");
    expect(signed.length).toBeGreaterThanOrEqual(1);
    expect(signed[0]).toMatchObject({ allowed: true, client: { ip: "192.168.65.3" } });
    expect([fp.ed, fp.rsa]).toContain(signed[0].fingerprint);
    expect(guest.daemon.stderr()).toContain("ssh agent signature requested");
  });

  it("serves 20 signing clients at once", async () => {
    await guest.shOk(`mkdir -p ${q(join(dir, "sign"))}`);
    const r = await inGuest(
      `cd ${q(join(dir, "sign"))} && for i in $(seq 20); do echo "payload $i" > f$i; ` +
        `ssh-keygen -Y sign -f ${q(`${keys.ed}.pub`)} -n test f$i >/dev/null 2>&1 & done; wait; ls *.sig | wc -l`,
      60_000,
    );
    expect(r.stdout.trim()).toBe("20");
  });

  it("applies the policy from a reloaded config: one key visible, add/remove/lock refused, signing works", async () => {
    const report = await reloadWith(`ssh-agent-keys: [${fp.ed}]\nssh-agent-sign-only: true\n`);
    expect(report.applied.sort()).toEqual(["sshAgentKeys", "sshAgentSignOnly"]);
    const listed = await inGuest("ssh-add -l");
    expect(listed.stdout).toContain(fp.ed);
    expect(listed.stdout).not.toContain(fp.rsa);
    expect((await inGuest("ssh-add -D")).code).not.toBe(0);
    const askpass = join(dir, "askpass.sh");
    writeFileSync(askpass, "#!/bin/sh\necho pw\n", { mode: 0o755 });
    const lock = await inGuest(`SSH_ASKPASS=${q(askpass)} SSH_ASKPASS_REQUIRE=force DISPLAY=:0 ssh-add -x`);
    expect(lock.code).not.toBe(0);
    expect((await login()).stdout.trim()).toBe("logged-in");
    // The host agent still holds both keys: nothing was removed.
    const host = await run("ssh-add", ["-l"], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    expect(host.stdout).toContain(fp.rsa);
    const status = JSON.parse((await ctl("status", "--json")).out);
    expect(status.sshAgent).toMatchObject({ signOnly: true, keys: [fp.ed] });
    expect(status.sshAgent.counters.refused).toMatchObject({ "remove-all": 1, lock: 1 });
  });

  it("gives the guest a clean failure while the host agent is missing, and recovers", async () => {
    await reloadWith(`ssh-auth-sock: ${join(dir, "missing.sock")}\n`);
    const started = Date.now();
    const gone = await inGuest("ssh-add -l", 20_000);
    expect(gone.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(guest.daemon.alive()).toBe(true);
    await reloadWith("log-level: info\n");
    const back = await inGuest("ssh-add -l");
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain(fp.rsa);
  });

  it("closes a guest connection that sends garbage, and only that one", async () => {
    const before = JSON.parse((await ctl("status", "--json")).out).sshAgent.counters;
    await guest.sh(`printf '\\377\\377\\377\\377garbage' | socat -t 2 - TCP:192.168.65.1:6022`);
    await guest.sh(`head -c 4096 /dev/zero | socat -t 2 - TCP:192.168.65.1:6022`);
    const after = JSON.parse((await ctl("status", "--json")).out).sshAgent.counters;
    expect(after.malformed - before.malformed).toBe(2);
    expect((await inGuest("ssh-add -l")).code).toBe(0);
    const metrics = (await ctl("metrics")).out;
    expect(metrics).toMatch(/desktopd_ssh_agent_malformed_total \d+/);
    expect(metrics).toMatch(/desktopd_ssh_agent_signatures_total [1-9]/);
  });

  it("prints the guest command, and the VM that runs it lists the keys", async () => {
    const printed = await ctl("ssh-agent", "guest-command");
    expect(printed.code, printed.err).toBe(0);
    const socatLine = printed.out.split("\n").find((l) => l.startsWith("mkdir -p"))!;
    expect(socatLine).toBe(
      "mkdir -p /run/host-services && socat UNIX-LISTEN:/run/host-services/ssh-auth.sock,fork,unlink-early,mode=666 TCP:192.168.65.1:6022",
    );
    if (vmUnavailableReason()) {
      process.stderr.write(`!!! the VM part is SKIPPED: ${vmUnavailableReason()}\n`);
      return;
    }
    await reloadWith("log-level: info\n");
    let vm: TestVm | undefined;
    try {
      vm = await bootVm({
        name: "ssh-agent",
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${qemuSock}`,
        extraBinaries: ["/usr/bin/socat", "/usr/bin/ssh-add"],
      });
      await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
      await vm.sh(`(${socatLine} &) ; sleep 1`);
      const listed = await vm.sh("SSH_AUTH_SOCK=/run/host-services/ssh-auth.sock ssh-add -l", 60_000);
      expect(listed).toContain(fp.ed);
      expect(listed).toContain(fp.rsa);
    } finally {
      await vm?.close();
    }
  });
});
