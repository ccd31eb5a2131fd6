import assert from "node:assert/strict";
import { calibrateRepeats, median, MIN_RUN_MS } from "../src/app/bench/timing.ts";

Deno.test("bench timing: repeats grow fourfold until a run lasts MIN_RUN_MS", async () => {
  const asked: number[] = [];
  // A fake run: 11 ms of waiting plus 0.5 ms per copy, as on a fast GPU.
  const run = (copies: number) => {
    asked.push(copies);
    return Promise.resolve(11 + 0.5 * copies);
  };
  const repeats = await calibrateRepeats(5, run);
  assert.deepEqual(asked, [5, 20, 80, 320]);
  assert.equal(repeats, 320);
  assert.ok(11 + 0.5 * repeats >= MIN_RUN_MS);
  // A slow adapter keeps the starting count after one run.
  asked.length = 0;
  assert.equal(await calibrateRepeats(3, (c) => (asked.push(c), Promise.resolve(40 * c))), 3);
  assert.deepEqual(asked, [3]);
  // Work too small to ever reach the target stops at the cap.
  assert.equal(await calibrateRepeats(1, () => Promise.resolve(1)), 1024);
});

Deno.test("bench timing: median of odd and even counts", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});
