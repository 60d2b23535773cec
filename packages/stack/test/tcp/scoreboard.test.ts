import { describe, expect, it } from "vitest";
import { SackScoreboard } from "../../src/tcp/scoreboard.js";
import { ConnectionTimers } from "../../src/tcp/timers.js";

describe("SACK scoreboard", () => {
  it("merges overlapping and adjacent blocks, drops stale and bogus ones", () => {
    const b = new SackScoreboard();
    b.update(
      [
        [300, 400],
        [100, 200],
        [200, 250],
        [50, 90], // below the ACK: stale
        [600, 500], // inverted: bogus
        [900, 2000], // beyond snd.max: bogus
      ],
      100,
      1000,
    );
    expect(b.sackedBytes()).toBe(250);
    expect(b.nextHole(100)).toEqual({ start: 250, end: 300 });
  });

  it("walks holes past HighRxt and forgets what the ACK passed", () => {
    const b = new SackScoreboard();
    b.update(
      [
        [200, 300],
        [400, 500],
      ],
      100,
      1000,
    );
    expect(b.nextHole(100)).toEqual({ start: 100, end: 200 });
    b.resent(100, 100);
    expect(b.nextHole(100)).toEqual({ start: 300, end: 400 });
    b.update([], 450, 1000);
    b.highRxt = 450;
    expect(b.nextHole(450)).toBeUndefined();
    b.update([], 500, 1000);
    expect(b.isEmpty).toBe(true);
  });

  it("wraps around the sequence space", () => {
    const b = new SackScoreboard();
    // Recovery starts HighRxt at snd.una.
    b.highRxt = 0xfffffff0;
    b.update([[10, 20]], 0xfffffff0, 30);
    expect(b.nextHole(0xfffffff0)).toEqual({ start: 0xfffffff0, end: 10 });
  });
});

describe("connection timers", () => {
  it("the next deadline is the earliest armed one", () => {
    const t = new ConnectionTimers();
    expect(t.next()).toBeUndefined();
    t.keepAlive = 500;
    t.rto = 300;
    t.persist = 400;
    expect(t.next()).toBe(300);
    t.clear();
    expect(t.next()).toBeUndefined();
  });
});
