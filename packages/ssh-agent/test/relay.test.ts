/**
 * The relay against OpenSSH's own ssh-agent, driven by OpenSSH's clients (ssh-add, ssh-keygen
 * -Y sign) through the relay's socket: listing, filtering by fingerprint, sign-only refusals,
 * signatures logged, a missing agent and its return, garbage and oversized messages, 20 signers
 * at once. No root needed; skipped, loudly, only where OpenSSH is not installed.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { missingCommands, skipBecause } from "@desktopd/stack/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentConfigError,
  type AgentRelay,
  createAgentRelay,
  encodeMessage,
  MessageType,
  type RefusalEvent,
  type SignEvent,
} from "../src/index.js";

const run = promisify(execFile);
const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);
const missing = skipBecause(missingCommands("ssh-agent", "ssh-add", "ssh-keygen"));

async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 100 && !existsSync(path); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(path)) throw new Error(`${path} did not appear`);
}

describe.skipIf(missing)("the relay in front of OpenSSH's ssh-agent", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-agent-"));
  const agentSock = join(dir, "agent.sock");
  const keys = { ed: join(dir, "id_ed25519"), rsa: join(dir, "id_rsa") };
  const fp: Record<"ed" | "rsa", string> = { ed: "", rsa: "" };
  let agent: ChildProcess;
  const servers: net.Server[] = [];
  const signs: SignEvent[] = [];
  const refusals: RefusalEvent[] = [];

  const startAgent = async () => {
    agent = spawn("ssh-agent", ["-D", "-a", agentSock], { stdio: "ignore" });
    await waitForSocket(agentSock);
  };

  /** Serves `relay` on a fresh unix socket; returns its path. */
  async function serve(relay: AgentRelay, name: string): Promise<string> {
    const path = join(dir, `${name}.sock`);
    const server = net.createServer((s) => relay.handle(s, { ip: "192.168.65.3", port: 40000 }));
    await new Promise<void>((r) => server.listen(path, r));
    servers.push(server);
    return path;
  }

  const sshAdd = (sock: string, ...args: string[]) =>
    run("ssh-add", args, { env: { ...process.env, SSH_AUTH_SOCK: sock }, timeout: 20_000 }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout,
        err: e.stderr,
      }),
    );

  const sign = async (sock: string, key: string, n: number) => {
    const file = join(dir, `data-${n}`);
    writeFileSync(file, `payload ${n}\n`);
    rmSync(`${file}.sig`, { force: true });
    return run("ssh-keygen", ["-Y", "sign", "-f", `${key}.pub`, "-n", "test", file], {
      env: { ...process.env, SSH_AUTH_SOCK: sock },
      timeout: 30_000,
    }).then(
      () => existsSync(`${file}.sig`),
      () => false,
    );
  };

  beforeAll(async () => {
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "ed-key", "-f", keys.ed]);
    await run("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa-key", "-f", keys.rsa]);
    for (const k of ["ed", "rsa"] as const) {
      fp[k] = (await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${keys[k]}.pub`])).stdout.split(" ")[1]!;
    }
    await startAgent();
    await run("ssh-add", [keys.ed, keys.rsa], { env: { ...process.env, SSH_AUTH_SOCK: agentSock } });
    // The keys live in the agent only: ssh-keygen -Y sign cannot fall back to the files.
    for (const k of Object.values(keys)) {
      writeFileSync(`${k}.keep`, readFileSync(k), { mode: 0o600 });
      rmSync(k);
    }
  });

  afterAll(async () => {
    agent?.kill();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists the host's keys and signs with them, each signature logged with its fingerprint", async () => {
    const relay = createAgentRelay({ socketPath: agentSock, onSign: (e) => signs.push(e) });
    const sock = await serve(relay, "open");
    const listed = await sshAdd(sock, "-l");
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toContain(fp.ed);
    expect(listed.out).toContain(fp.rsa);
    expect(await sign(sock, keys.rsa, 1)).toBe(true);
    expect(signs.at(-1)).toMatchObject({
      fingerprint: fp.rsa,
      keyType: "ssh-rsa",
      allowed: true,
      client: { ip: "192.168.65.3", port: 40000 },
    });
  });

  it("with the policy, hides other keys, refuses add/remove/lock and still signs", async () => {
    const relay = createAgentRelay({
      socketPath: agentSock,
      policy: { signOnly: true, keys: [fp.ed] },
      onSign: (e) => signs.push(e),
      onRefusal: (e) => refusals.push(e),
    });
    const sock = await serve(relay, "policy");
    const listed = await sshAdd(sock, "-l");
    expect(listed.out).toContain(fp.ed);
    expect(listed.out).not.toContain(fp.rsa);
    expect(await sign(sock, keys.ed, 2)).toBe(true);
    // ssh-keygen does not even ask: the key is not listed.
    expect(await sign(sock, keys.rsa, 3)).toBe(false);
    // A client that asks anyway, with the hidden key's blob, gets SSH_AGENT_FAILURE.
    const blob = Buffer.from(readFileSync(`${keys.rsa}.pub`, "utf8").split(" ")[1]!, "base64");
    const string = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, b.length >> 8, b.length & 255]), b]);
    const request = encodeMessage(
      MessageType.signRequest,
      Buffer.concat([string(blob), string(Buffer.from("data")), Buffer.alloc(4)]),
    );
    const reply = await new Promise<Buffer>((resolve) => {
      const c = net.connect(sock, () => c.write(request));
      c.once("data", (b) => {
        c.destroy();
        resolve(b);
      });
    });
    expect([...reply]).toEqual([0, 0, 0, 1, MessageType.failure]);
    expect(signs.at(-1)).toMatchObject({ fingerprint: fp.rsa, allowed: false });
    const removeAll = await sshAdd(sock, "-D");
    expect(removeAll.code).not.toBe(0);
    const add = await sshAdd(sock, `${keys.rsa}.keep`);
    expect(add.code).not.toBe(0);
    // ssh-add -x asks for a password: given by an askpass program, no terminal needed.
    const askpass = join(dir, "askpass.sh");
    writeFileSync(askpass, "#!/bin/sh\necho pw\n", { mode: 0o755 });
    const lock = await run("ssh-add", ["-x"], {
      env: {
        ...process.env,
        SSH_AUTH_SOCK: sock,
        SSH_ASKPASS: askpass,
        SSH_ASKPASS_REQUIRE: "force",
        DISPLAY: ":0",
      },
      timeout: 20_000,
    }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(lock).not.toBe(0);
    expect(relay.counters().refused).toMatchObject({ "remove-all": 1, add: 1, lock: 1, sign: 1 });
    expect(refusals.map((r) => r.reason)).toContain("sign-only");
    // Nothing reached the agent: both keys are still there.
    expect((await sshAdd(agentSock, "-l")).out).toContain(fp.rsa);
    expect(() => relay.setPolicy({ keys: ["MD5:ab:cd"] })).toThrow(AgentConfigError);
  });

  it("answers a failure while the host agent is gone, and recovers when it is back", async () => {
    const relay = createAgentRelay({ socketPath: agentSock });
    const sock = await serve(relay, "recover");
    agent.kill();
    await new Promise((r) => agent.once("exit", r));
    rmSync(agentSock, { force: true });
    const started = Date.now();
    const gone = await sshAdd(sock, "-l");
    expect(gone.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(relay.counters().agentUnavailable).toBeGreaterThanOrEqual(1);
    await startAgent();
    await run("ssh-add", [`${keys.ed}.keep`, `${keys.rsa}.keep`], {
      env: { ...process.env, SSH_AUTH_SOCK: agentSock },
    });
    const back = await sshAdd(sock, "-l");
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain(fp.ed);
  });

  it("closes a connection that sends garbage or an oversized message, and only that one", async () => {
    const relay = createAgentRelay({ socketPath: agentSock });
    const sock = await serve(relay, "garbage");
    const send = (bytes: Buffer) =>
      new Promise<Buffer>((resolve) => {
        const c = net.connect(sock);
        const got: Buffer[] = [];
        c.on("data", (b) => got.push(b));
        c.on("error", () => {});
        c.on("close", () => resolve(Buffer.concat(got)));
        c.write(bytes);
        setTimeout(() => c.destroy(), 3000);
      });
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(300 * 1024, 0);
    expect((await send(huge)).length).toBe(0);
    expect((await send(Buffer.from([0, 0, 0, 0, 1]))).length).toBe(0);
    // A sign request whose key string runs past the message.
    const bad = encodeMessage(MessageType.signRequest, Buffer.from([0, 0, 1, 0, 1, 2]));
    expect((await send(bad)).length).toBe(0);
    expect(relay.counters().malformed).toBe(3);
    expect((await sshAdd(sock, "-l")).code).toBe(0);
  });

  it("survives any stream a guest sends", async () => {
    const relay = createAgentRelay({ socketPath: agentSock, timeoutMs: 2000 });
    const sock = await serve(relay, "fuzz");
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
        await new Promise<void>((resolve) => {
          const c = net.connect(sock);
          c.on("error", () => {});
          c.on("close", () => resolve());
          c.end(Buffer.from(bytes));
          setTimeout(() => c.destroy(), 300);
        });
      }),
      { numRuns: 40 * FUZZ },
    );
    expect((await sshAdd(sock, "-l")).code).toBe(0);
  });

  it("serves 20 signing clients at once", async () => {
    const relay = createAgentRelay({ socketPath: agentSock });
    const sock = await serve(relay, "many");
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sign(sock, i % 2 ? keys.ed : keys.rsa, 100 + i)),
    );
    expect(results.every(Boolean)).toBe(true);
    expect(relay.counters().signatures).toBe(20);
  });
});
