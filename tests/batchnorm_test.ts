import assert from "node:assert/strict";
import type { Engine } from "../src/engine/engine.ts";
import { batchNorm2d, type BatchNormOptions } from "../src/ops/batchnorm.ts";
import {
  batchNormApply,
  batchNormEvalBackward,
  batchNormTrainBackward,
  batchNormTrainForward,
  batchStats,
  updateRunningStats,
} from "../src/ref/batchnorm.ts";
import { sizeOf } from "../src/engine/tensor.ts";
import {
  assertClose,
  backwardOf,
  gpuTest,
  randomArray,
  randomTensor,
  relError,
  throwsWith,
} from "./helpers.ts";

const EPS = 1e-5;
const MOMENTUM = 0.1;

/** Random layer parameters and running statistics for C channels (GPU and float64 twins). */
function layer(e: Engine, C: number, seed: number) {
  const gamma = randomTensor(e, [C], seed, 0.5, 1.5);
  const beta = randomTensor(e, [C], seed + 1);
  const runMean = randomTensor(e, [C], seed + 2);
  const runVar = randomTensor(e, [C], seed + 3, 0.5, 1.5);
  gamma.t.requiresGrad = true;
  beta.t.requiresGrad = true;
  return { gamma, beta, runMean, runVar, running: { mean: runMean.t, variance: runVar.t } };
}

// Odd spatial sizes, channels on and off the vec4 path, batch 1 and 3, feature batches [N, F].
const SHAPES = [[1, 7, 13, 3], [3, 7, 13, 5], [3, 5, 5, 17], [2, 4, 6, 8], [3, 6], [5, 16]];

for (const shape of SHAPES) {
  const C = shape.at(-1)!;
  const M = sizeOf(shape) / C;

  gpuTest(
    `batchNorm2d training: y, running stats (two steps), grads ${JSON.stringify(shape)}`,
    async (e) => {
      const { gamma, beta, runMean, runVar, running } = layer(e, C, 10);
      // Inputs off zero mean so the mean subtraction matters.
      const x1 = randomTensor(e, shape, 1, -1, 3);
      const x2 = randomTensor(e, shape, 2, -2, 1);
      const dy = randomTensor(e, shape, 3);
      x1.t.requiresGrad = true;

      const y1 = batchNorm2d(x1.t, gamma.t, beta.t, running, { training: true });
      const [dx, dgamma, dbeta] = backwardOf(e, y1, dy.t, [x1.t, gamma.t, beta.t]);
      const want1 = batchNormTrainForward(x1.ref, M, C, gamma.ref, beta.ref, EPS);
      const run1 = updateRunningStats(runMean.ref, runVar.ref, want1, M, MOMENTUM);
      assertClose(await y1.read(), want1.y, "y (step 1)");
      assertClose(await running.mean.read(), run1.mean, "running mean (step 1)");
      assertClose(await running.variance.read(), run1.variance, "running variance (step 1)");
      const want = batchNormTrainBackward(dy.ref, x1.ref, M, C, gamma.ref, EPS);
      assertClose(await dx!.read(), want.dx, "dx");
      assertClose(await dgamma!.read(), want.dgamma, "dgamma");
      assertClose(await dbeta!.read(), want.dbeta, "dbeta");

      // A second step, without recording: the running statistics still move.
      const y2 = e.noGrad(() =>
        batchNorm2d(x2.t, gamma.t, beta.t, running, { training: true, momentum: 0.3 })
      );
      const want2 = batchNormTrainForward(x2.ref, M, C, gamma.ref, beta.ref, EPS);
      const run2 = updateRunningStats(run1.mean, run1.variance, want2, M, 0.3);
      assertClose(await y2.read(), want2.y, "y (step 2)");
      assertClose(await running.mean.read(), run2.mean, "running mean (step 2)");
      assertClose(await running.variance.read(), run2.variance, "running variance (step 2)");
    },
  );

  gpuTest(
    `batchNorm2d evaluation: y, grads, running stats untouched ${JSON.stringify(shape)}`,
    async (e) => {
      const { gamma, beta, runMean, runVar, running } = layer(e, C, 20);
      const x = randomTensor(e, shape, 4, -1, 3);
      const dy = randomTensor(e, shape, 5);
      x.t.requiresGrad = true;
      const y = batchNorm2d(x.t, gamma.t, beta.t, running, { training: false, eps: 1e-3 });
      const [dx, dgamma, dbeta] = backwardOf(e, y, dy.t, [x.t, gamma.t, beta.t]);
      const wantY = batchNormApply(x.ref, M, C, gamma.ref, beta.ref, runMean.ref, runVar.ref, 1e-3);
      assertClose(await y.read(), wantY, "y");
      const want = batchNormEvalBackward(
        dy.ref,
        x.ref,
        M,
        C,
        gamma.ref,
        runMean.ref,
        runVar.ref,
        1e-3,
      );
      assertClose(await dx!.read(), want.dx, "dx");
      assertClose(await dgamma!.read(), want.dgamma, "dgamma");
      assertClose(await dbeta!.read(), want.dbeta, "dbeta");
      assertClose(await running.mean.read(), runMean.ref, "running mean", 0);
      assertClose(await running.variance.read(), runVar.ref, "running variance", 0);
    },
  );
}

gpuTest("batchNorm2d backward computes only the gradients asked for", async (e) => {
  const shape = [2, 3, 5, 6];
  const [C, M] = [6, 30];
  const { gamma, beta, running } = layer(e, C, 30);
  const x = randomTensor(e, shape, 6);
  const dy = randomTensor(e, shape, 7);
  const want = batchNormTrainBackward(dy.ref, x.ref, M, C, gamma.ref, EPS);
  const inputs = [x.t, gamma.t, beta.t];
  const names = ["dx", "dgamma", "dbeta"] as const;
  const dispatches: number[] = [];
  for (
    const needs of [[true, true, true], [true, false, false], [false, true, false], [
      false,
      false,
      true,
    ]]
  ) {
    inputs.forEach((t, i) => t.requiresGrad = needs[i]);
    const y = batchNorm2d(x.t, gamma.t, beta.t, running, { training: true });
    const before = e.stats.dispatches;
    const grads = backwardOf(e, y, dy.t, inputs);
    dispatches.push(e.stats.dispatches - before);
    for (let i = 0; i < 3; i++) {
      if (needs[i]) {
        const wanted = [want.dx, want.dgamma, want.dbeta][i];
        assertClose(await grads[i]!.read(), wanted, `${names[i]} (asked: ${needs})`);
      }
    }
  }
  // The parameter gradients alone skip dx's kernel.
  const [every, , gammaOnly, betaOnly] = dispatches;
  assert.ok(gammaOnly < every && betaOnly < every, `dispatches ${dispatches}`);
});

gpuTest("batchNorm2d rejects bad shapes and options with clear errors", (e) => {
  const { gamma, beta, running } = layer(e, 3, 40);
  const x = e.full([2, 4, 4, 3], 1);
  const bn = (input = x, g = gamma.t, options: BatchNormOptions = { training: true }) =>
    batchNorm2d(input, g, beta.t, running, options);
  throwsWith(() => bn(e.full([2, 4, 3], 1)), "batchNorm2d: expected input");
  throwsWith(() => bn(e.full([2, 4, 4, 5], 1)), "gamma [3] does not match the 5 channels");
  throwsWith(() => bn(x, e.full([1, 3], 1)), "gamma [1, 3]");
  throwsWith(() => bn(e.full([1, 3], 1)), "more than one value per channel");
  throwsWith(() => bn(x, gamma.t, { training: true, eps: 0 }), "eps");
});

// ---- the float64 reference against finite differences ----------------------------------

/** Central difference of `f` at `v[i]` with step `h` (v is restored). */
function centralDiff(f: () => number, v: Float64Array, i: number, h: number): number {
  const keep = v[i];
  v[i] = keep + h;
  const up = f();
  v[i] = keep - h;
  const down = f();
  v[i] = keep;
  return (up - down) / (2 * h);
}

Deno.test("batch-norm reference backward matches finite differences (train and eval)", () => {
  const [M, C] = [7, 3];
  const x = randomArray(M * C, 1, -1, 3);
  const gamma = randomArray(C, 2, 0.5, 1.5);
  const beta = randomArray(C, 3);
  const r = randomArray(M * C, 4);
  const runMean = randomArray(C, 5);
  const runVar = randomArray(C, 6, 0.5, 1.5);
  const dot = (y: Float64Array) => y.reduce((s, v, i) => s + v * r[i], 0);
  const lossTrain = () => dot(batchNormTrainForward(x, M, C, gamma, beta, EPS).y);
  const lossEval = () => dot(batchNormApply(x, M, C, gamma, beta, runMean, runVar, EPS));
  const cases = [
    ["train", lossTrain, batchNormTrainBackward(r, x, M, C, gamma, EPS)],
    ["eval", lossEval, batchNormEvalBackward(r, x, M, C, gamma, runMean, runVar, EPS)],
  ] as const;
  for (const [mode, loss, grads] of cases) {
    for (const [name, v, g] of [["x", x, grads.dx], ["gamma", gamma, grads.dgamma]] as const) {
      const numeric = Array.from(v, (_, i) => centralDiff(loss, v, i, 1e-6));
      const err = relError(g, numeric);
      if (!(err < 1e-6)) throw new Error(`${mode} d${name}: relative error ${err}`);
    }
    const numericBeta = Array.from(beta, (_, i) => centralDiff(loss, beta, i, 1e-6));
    const err = relError(grads.dbeta, numericBeta);
    if (!(err < 1e-6)) throw new Error(`${mode} dbeta: relative error ${err}`);
  }
  // The batch statistics sanity: normalized training output has mean 0 and variance ~1.
  const y = batchNormTrainForward(x, M, C, new Float64Array(C).fill(1), new Float64Array(C), 0).y;
  const s = batchStats(y, M, C);
  assertClose(s.mean, new Float64Array(C), "mean of xhat", 1e-12);
  assertClose(s.variance, new Float64Array(C).fill(1), "variance of xhat", 1e-12);
});
