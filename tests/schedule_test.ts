import assert from "node:assert/strict";
import { getConfig } from "../src/model/configs.ts";
import {
  formatDuration,
  learningRate,
  progressLine,
  runSecondsLeft,
  scheduleProgress,
  trainingSide,
} from "../src/app/schedule.ts";

const close = (a: number, b: number, what: string) =>
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

Deno.test("learning rate: linear warm-up over 2% of the steps, cosine decay to 1% of the peak", () => {
  const total = 1000; // warm-up is 20 steps
  close(learningRate(0.002, 0, total), 0.002 / 20, "first step");
  close(learningRate(0.002, 19, total), 0.002, "end of warm-up");
  close(learningRate(0.002, 20 + 490, total), 0.002 * (0.01 + 0.99 * 0.5), "half-way");
  close(learningRate(0.002, total, total), 0.002 * 0.01, "end");
  for (let s = 21; s < total; s++) {
    assert.ok(learningRate(1, s, total) < learningRate(1, s - 1, total), `decreasing at ${s}`);
  }
});

Deno.test("learning rate: a time budget that runs ahead of the steps moves the decay on", () => {
  const total = 1000;
  // 10% of the steps done but 90% of the time used: the rate is the one at 90% of the decay.
  close(learningRate(1, 20 + 98, total, 0.9), learningRate(1, 20 + 882, total), "clock ahead");
  // The clock behind the steps changes nothing.
  close(learningRate(1, 800, total, 0.1), learningRate(1, 800, total), "clock behind");
  // Out of time: the floor; warm-up still goes by steps.
  close(learningRate(1, 100, total, 1.5), 0.01, "out of time");
  close(learningRate(1, 5, total, 0.5), 6 / 20, "warm-up");
});

Deno.test("training side: the low-resolution side until its fraction of training, then the input", () => {
  const small = getConfig("small");
  assert.deepEqual(small.lowRes, { side: 64, until: 0.5 });
  assert.equal(trainingSide(small, 0), 64);
  assert.equal(trainingSide(small, 0.499), 64);
  assert.equal(trainingSide(small, 0.5), 96);
  assert.equal(trainingSide(small, 1.2), 96);
  // A config without a low-resolution phase trains at its input throughout.
  const paper = getConfig("paper");
  assert.equal(paper.lowRes, undefined);
  assert.equal(trainingSide(paper, 0), paper.inputHeight);
});

Deno.test("schedule progress: 0 in warm-up, then steps or time, whichever is further", () => {
  const total = 1000; // warm-up is 20 steps
  assert.equal(scheduleProgress(0, total, 5), 0); // warm-up goes by steps only
  assert.equal(scheduleProgress(19, total), 0);
  close(scheduleProgress(20 + 490, total), 0.5, "half of the decay steps");
  close(scheduleProgress(20 + 98, total, 0.9), 0.9, "clock ahead");
  close(scheduleProgress(800, total, 0.1), (800 - 20) / 980, "clock behind");
  assert.equal(scheduleProgress(total + 5, total), 1);
  assert.equal(scheduleProgress(100, total, 1.5), 1);
});

Deno.test("run ETA: steps left priced by their side's pixels, plus validations, within the budget", () => {
  const config = getConfig("small"); // 64x64 until half-way, then 96x96
  const total = 1000; // warm-up 20 steps; the side switches at step 20 + 490
  const base = {
    config,
    totalSteps: total,
    timeFraction: 0,
    secondsPerPixelStep: 1e-4,
    validations: 0,
    validationSeconds: 30,
    budgetLeft: Infinity,
  };
  const low = 510 * 64 * 64, high = 490 * 96 * 96;
  close(runSecondsLeft({ ...base, fromStep: 0 }), (low + high) * 1e-4, "whole run");
  close(runSecondsLeft({ ...base, fromStep: 510 }), high * 1e-4, "second half");
  close(runSecondsLeft({ ...base, fromStep: total, validations: 2 }), 60, "validations only");
  close(runSecondsLeft({ ...base, fromStep: 0, budgetLeft: 120 }), 120, "the budget caps it");
  // A clock past the switch makes every step left a 96x96 one.
  close(
    runSecondsLeft({ ...base, fromStep: 100, timeFraction: 0.6 }),
    900 * 96 * 96 * 1e-4,
    "clock",
  );
});

Deno.test("the progress line shows the time left for the whole run", () => {
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(7 * 60 + 42), "7m42s");
  assert.equal(formatDuration(3600 + 2 * 60 + 5), "1h02m");
  assert.equal(
    progressLine(3, 10, 120, 363, 14.24, 31.5, 47 * 60 + 42),
    "epoch 3/10 [#######.............] 120/363  loss 14.2 mo  31.5 img/s  run ends in 47m42s",
  );
});
