/**
 * After a flood, the daemon may still be reading what reached it: reads `status` until the value
 * `of` picks stops moving between two reads 100 ms apart (or 5 s pass), and returns the last read.
 */
export async function untilSteady<S>(status: () => Promise<S>, of: (s: S) => number | undefined): Promise<S> {
  let s = await status();
  for (let last: number | undefined = -1, i = 0; i < 50 && of(s) !== last; i++) {
    last = of(s);
    await new Promise((r) => setTimeout(r, 100));
    s = await status();
  }
  return s;
}
