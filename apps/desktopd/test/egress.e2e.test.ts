/**
 * The egress policy through the daemon, with a real guest: crafted SYNs to host loopback
 * addresses are refused while the host address works; rules by name follow the gateway's DNS
 * answers to that guest; rules change at run time; --no-host-loopback closes the host address.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  skipBecause,
  startHttpServer,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { controlRequest } from "../src/control/client.js";
import { type Guest, q, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("curl", "dig", "python3"));
const FLOODS_PY = fileURLToPath(new URL("./support/floods.py", import.meta.url));
const HOST = "192.168.65.254";
const GATEWAY = "192.168.65.1";

describe.skipIf(!ready)("egress through the daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-egress-"));
  const control = join(dir, "control.sock");
  let guest: Guest;
  let http: HostHttpServer;

  beforeAll(async () => {
    http = await startHttpServer();
    guest = await startGuest("egress", {
      configure: true,
      args: [
        ...["--control", control],
        ...["--dns-record", "api.local.test=127.0.0.1", "--dns-record", "blocked.test=192.168.65.254"],
        ...["--egress", "allow tcp .local.test", "--egress", "deny blocked.test"],
      ],
    });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const get = (target: string) =>
    guest.sh(`curl -sS --fail --max-time 10 ${q(`http://${target}:${http.port}/hello/x`)}`);

  it("refuses crafted SYNs to 127.0.0.1, 127.0.0.2, 127.0.0.53 and 0.0.0.0 with RST", async () => {
    await guest.shOk(`ping -c 1 -W 5 ${GATEWAY}`);
    const gwMac = (await guest.shOk(`ip neigh show ${GATEWAY} dev eth0`)).split(/\s+/)[2]!;
    const answer = async (dst: string) =>
      JSON.parse(
        await guest.shOk(`python3 ${q(FLOODS_PY)} syn eth0 ${gwMac} 192.168.65.3 ${dst} ${http.port}`),
      ) as { answer: string | null };
    for (const dst of ["127.0.0.1", "127.0.0.2", "127.0.0.53", "0.0.0.0"]) {
      expect((await answer(dst)).answer, dst).toBe("RA");
    }
    // The same port through the documented host address is open.
    expect((await answer(HOST)).answer).toBe("SA");
    const egress = (await controlRequest(control, "GET", "/v1/egress")) as {
      counters: { deniedBy: Record<string, number> };
    };
    expect(egress.counters.deniedBy.loopback).toBe(4);
  });

  it("a rule by name opens a loopback address the gateway's DNS gave the guest for that name", async () => {
    // The guest's kernel keeps 127.0.0.1 to itself, so the SYN is crafted, as in the test above.
    const gwMac = (await guest.shOk(`ip neigh show ${GATEWAY} dev eth0`)).split(/\s+/)[2]!;
    expect((await guest.shOk(`dig +short @${GATEWAY} api.local.test`)).trim()).toBe("127.0.0.1");
    const r = JSON.parse(
      await guest.shOk(`python3 ${q(FLOODS_PY)} syn eth0 ${gwMac} 192.168.65.3 127.0.0.1 ${http.port}`),
    ) as { answer: string | null };
    expect(r.answer).toBe("SA");
  });

  it("a deny rule by name closes the address once the guest has resolved the name", async () => {
    expect((await get(HOST)).stdout).toBe("hello x\n");
    expect((await guest.shOk(`dig +short @${GATEWAY} blocked.test`)).trim()).toBe(HOST);
    const refused = await get(HOST);
    expect(refused.code, refused.stderr).toBe(7); // curl: couldn't connect
  });

  it("rules change while it runs: the deny goes, the host address opens again", async () => {
    const state = (await controlRequest(control, "GET", "/v1/egress")) as {
      rules: { id: number; to: string }[];
    };
    const deny = state.rules.find((r) => r.to === "blocked.test")!;
    await controlRequest(control, "DELETE", `/v1/egress/${deny.id}`);
    expect((await get(HOST)).stdout).toBe("hello x\n");
  });
});

describe.skipIf(!ready)("--no-host-loopback", () => {
  let guest: Guest;
  let http: HostHttpServer;

  beforeAll(async () => {
    http = await startHttpServer();
    guest = await startGuest("nohost", { configure: true, args: ["--no-host-loopback"] });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  it("refuses the host address at once, and still serves DNS on the gateway", async () => {
    const r = await guest.sh(`curl -sS --max-time 10 ${q(`http://${HOST}:${http.port}/hello/x`)}`);
    expect(r.code, r.stderr).toBe(7);
    expect((await guest.shOk(`dig +short @${GATEWAY} host.docker.internal`)).trim()).toBe(HOST);
  });
});
