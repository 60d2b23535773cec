/**
 * Egress rules through the control API and the CLI, against a real stack's policy: add (at a
 * position), list with counters, remove, and the errors a client gets for bad rules and ids.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createForwarder, createSocketDialer } from "@desktopd/portfwd";
import { createStack, type Stack } from "@desktopd/stack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { controlRequest } from "../src/control/client.js";
import { type ControlServer, startControlServer } from "../src/control/server.js";
import { cli } from "./support/cli.js";

describe("egress over the control API", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-egress-"));
  const path = join(dir, "control.sock");
  let stack: Stack;
  let control: ControlServer;
  const forwarder = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1" });

  beforeAll(async () => {
    stack = createStack({ egress: { rules: ["deny 10.0.0.0/8"] } });
    control = await startControlServer(path, { forwarder, egress: stack.egress, status: () => ({}) });
  });

  afterAll(async () => {
    await control?.close();
    await forwarder.close();
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists the rules, then the defaults they fall back to", async () => {
    const r = await cli("egress", "ls", "--control", path);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}1 {2}deny 10\.0\.0\.0\/8 {2}\(0 flows\)\n/);
    expect(r.out).toContain("the host address reaches the host's loopback");
  });

  it("adds a rule at a position and removes it by id", async () => {
    const added = await cli(
      "egress",
      "add",
      "--control",
      path,
      "--position",
      "1",
      "allow",
      "tcp",
      "10.1.0.0/16:443",
    );
    expect(added.code).toBe(0);
    expect(added.out).toMatch(/^ {2}2 {2}allow tcp 10\.1\.0\.0\/16:443/);
    expect(stack.egress.rules().map((r) => r.id)).toEqual([2, 1]);
    const removed = await cli("egress", "rm", "--control", path, "2");
    expect(removed.code).toBe(0);
    expect(stack.egress.rules().map((r) => r.id)).toEqual([1]);
  });

  it("takes a rule as an object too", async () => {
    const rule = await controlRequest(path, "POST", "/v1/egress", {
      rule: { action: "deny", to: "*.ads.example" },
    });
    expect(rule).toMatchObject({ action: "deny", to: "*.ads.example", matched: 0 });
    await controlRequest(path, "DELETE", `/v1/egress/${(rule as { id: number }).id}`);
  });

  it("answers 400 for a bad rule and 404 for an unknown id, and the CLI says so", async () => {
    await expect(controlRequest(path, "POST", "/v1/egress", { rule: "block 1.2.3.4" })).rejects.toThrow(
      "starts with allow or deny",
    );
    await expect(controlRequest(path, "POST", "/v1/egress", { rule: 7 })).rejects.toThrow("expected");
    await expect(
      controlRequest(path, "POST", "/v1/egress", { rule: "deny *", position: -1 }),
    ).rejects.toThrow("position");
    const bad = await cli("egress", "rm", "--control", path, "99");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("no egress rule with id 99");
    expect(stack.egress.rules().map((r) => r.to)).toEqual(["10.0.0.0/8"]);
  });
});
