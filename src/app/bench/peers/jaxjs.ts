/**
 * Benchmark peer: jax-js 0.1.25 (`@jax-js/jax`) on its `webgpu` device, on the same adapter
 * as our engine (Deno's `navigator.gpu`; no shim needed).
 *
 * Every timed function is `jit`-compiled, as a jax user would write it, and every timing
 * ends with `blockUntilReady()` on the result, which waits for the GPU to finish.
 * jax-js convolutions take NCHW inputs and OIHW filters only (`lax.convGeneralDilated` has
 * no dimension numbers), so this peer uses that layout; the shapes match ours otherwise.
 * Gradients come from jax-js' own `vjp` / `valueAndGrad`. There is no optax package on npm
 * for 0.1.25, so Adam is written out with jax-js ops (bias correction folded into the
 * step size, `p -= lr_t * m / (sqrt(v) + eps)`).
 *
 * jax-js arrays are reference counted: every call consumes its arguments, `.ref` keeps one.
 *
 * @module
 */
import {
  type Array,
  defaultDevice,
  init,
  jit,
  lax,
  nn,
  numpy as np,
  valueAndGrad,
  vjp,
} from "npm:@jax-js/jax@0.1.25";
import type { ConvPass } from "../conv.ts";
import { type ConvGeometry, outputSize } from "../../../ops/geometry.ts";
import { calibrateRepeats, type MapShape, median } from "../timing.ts";

export type { ConvPass } from "../conv.ts";
export type { ConvGeometry } from "../../../ops/geometry.ts";
export type { MapShape } from "../timing.ts";

/** Starts jax-js' WebGPU backend and makes it the default device; throws if it cannot. */
export async function setup(): Promise<void> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new Error("jax-js peer: this runtime has no navigator.gpu (WebGPU)");
  }
  const devices = await init("webgpu");
  if (!devices.includes("webgpu")) {
    throw new Error(`jax-js peer: the webgpu device failed to start (got: ${devices.join(", ")})`);
  }
  defaultDevice("webgpu");
}

/** Random values, |v| in [0.5, 1.5) times `scale`, random sign: never zero. */
function random(shape: number[], scale = 1): Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    data[i] = (Math.random() < 0.5 ? -scale : scale) * (0.5 + Math.random());
  }
  return np.array(data, { shape });
}

/**
 * Calls `step` once to warm up (and compile), then times `repeats` batches of `copies` calls
 * that wait for every result; `copies` grows as in our own timing ({@link calibrateRepeats}).
 * The median ms per call.
 */
async function timeCalls(step: () => Array, repeats: number): Promise<number> {
  const batch = async (copies: number) => {
    const t0 = performance.now();
    const ys: Array[] = [];
    for (let i = 0; i < copies; i++) ys.push(step());
    await Promise.all(ys.map((y) => y.blockUntilReady()));
    for (const y of ys) y.dispose();
    return performance.now() - t0;
  };
  await batch(1);
  const copies = await calibrateRepeats(1, batch);
  const times: number[] = [];
  for (let r = 0; r < Math.max(1, repeats); r++) times.push(await batch(copies) / copies);
  return median(times);
}

/** dL/dx of `f` at `x` for the cotangent `dy`, via jax-js' `vjp` (consumes x and dy). */
function pullback(f: (x: Array) => Array, x: Array, dy: Array): Array {
  const [y, back] = vjp(f, [x]);
  y.dispose();
  const [dx] = back(dy);
  back.dispose();
  return dx;
}

/** Median ms of one convolution pass (`pad` applied on every side) on random inputs. */
export async function timeConv2d(
  s: ConvGeometry,
  pass: ConvPass,
  repeats: number,
): Promise<number> {
  const { OH: ho, OW: wo } = outputSize(s);
  const pad: [number, number][] = [[s.padding, s.padding], [s.padding, s.padding]];
  const conv = (x: Array, w: Array) => lax.convGeneralDilated(x, w, [s.stride, s.stride], pad);
  const x = random([s.N, s.Cin, s.H, s.W]);
  const w = random([s.Cout, s.Cin, s.KH, s.KW]);
  const dy = random([s.N, s.Cout, ho, wo]);
  const fns = {
    forward: jit((x: Array, w: Array, dy: Array) => {
      dy.dispose();
      return conv(x, w);
    }),
    backwardData: jit((x: Array, w: Array, dy: Array) => pullback((x) => conv(x, w), x, dy)),
    backwardWeight: jit((x: Array, w: Array, dy: Array) => pullback((w) => conv(x, w), w, dy)),
  };
  const f = fns[pass];
  try {
    return await timeCalls(() => f(x.ref, w.ref, dy.ref), repeats);
  } finally {
    f.dispose();
    for (const a of [x, w, dy]) a.dispose();
  }
}

/** 2x2 stride-2 max-pool of an NCHW map (even H and W). */
function maxPool2(x: Array): Array {
  const [n, c, h, w] = x.shape;
  return x.reshape([n, c, h / 2, 2, w / 2, 2]).max([3, 5]);
}

/** Median ms of a 2x2 stride-2 max-pool, forward or backward (dL/dx from dL/dy). */
export async function timeMaxPool(
  s: MapShape,
  pass: "forward" | "backward",
  repeats: number,
): Promise<number> {
  const x = random([s.n, s.c, s.h, s.w]);
  const dy = random([s.n, s.c, s.h / 2, s.w / 2]);
  const f = pass === "forward"
    ? jit((x: Array, dy: Array) => {
      dy.dispose();
      return maxPool2(x);
    })
    : jit((x: Array, dy: Array) => pullback(maxPool2, x, dy));
  try {
    return await timeCalls(() => f(x.ref, dy.ref), repeats);
  } finally {
    f.dispose();
    x.dispose();
    dy.dispose();
  }
}

/** Batch norm in training mode over N, H, W of an NCHW map; also returns the batch moments. */
function batchNorm(x: Array, gamma: Array, beta: Array): [Array, Array, Array] {
  const c = x.shape[1];
  const mean = x.ref.mean([0, 2, 3], { keepdims: true });
  const centered = x.sub(mean.ref);
  const variance = np.square(centered.ref).mean([0, 2, 3], { keepdims: true });
  const scale = gamma.reshape([1, c, 1, 1]).div(np.sqrt(variance.ref.add(1e-5)));
  const y = centered.mul(scale).add(beta.reshape([1, c, 1, 1]));
  return [y, mean.reshape([c]), variance.reshape([c])];
}

/** Median ms of batch norm in training mode: batch moments, then normalize, scale, shift. */
export async function timeBatchNorm(s: MapShape, repeats: number): Promise<number> {
  const x = random([s.n, s.c, s.h, s.w]);
  const gamma = random([s.c]);
  const beta = random([s.c]);
  const f = jit((x: Array, gamma: Array, beta: Array) => {
    const [y, mean, variance] = batchNorm(x, gamma, beta);
    mean.dispose();
    variance.dispose();
    return y;
  });
  try {
    return await timeCalls(() => f(x.ref, gamma.ref, beta.ref), repeats);
  } finally {
    f.dispose();
    for (const a of [x, gamma, beta]) a.dispose();
  }
}

const BETA1 = 0.9;
const BETA2 = 0.999;

/** One Adam step on lists of parameters, gradients and moments; consumes all of them. */
function adam(ps: Array[], gs: Array[], ms: Array[], vs: Array[], lrT: Array) {
  const out = { ps: [] as Array[], ms: [] as Array[], vs: [] as Array[] };
  ps.forEach((p, i) => {
    const g = gs[i];
    const m = ms[i].mul(BETA1).add(g.ref.mul(1 - BETA1));
    const v = vs[i].mul(BETA2).add(np.square(g).mul(1 - BETA2));
    out.ps.push(p.sub(lrT.ref.mul(m.ref).div(np.sqrt(v.ref).add(1e-8))));
    out.ms.push(m);
    out.vs.push(v);
  });
  lrT.dispose();
  return out;
}

/** Adam's step size at step `t` (1-based) with both bias corrections folded in. */
function adamStepSize(lr: number, t: number): number {
  return lr * Math.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t);
}

/** Median ms of one jitted Adam update of a single `size`-element parameter. */
export async function timeAdam(size: number, repeats: number): Promise<number> {
  const f = jit((p: Array, g: Array, m: Array, v: Array, lrT: Array) => {
    const out = adam([p], [g], [m], [v], lrT);
    out.ms[0].dispose();
    out.vs[0].dispose();
    return out.ps[0];
  });
  const [p, g, m] = [random([size]), random([size]), random([size], 1e-3)];
  const v = np.abs(random([size], 1e-6));
  try {
    return await timeCalls(() => f(p.ref, g.ref, m.ref, v.ref, np.array(1e-3)), repeats);
  } finally {
    f.dispose();
    for (const a of [p, g, m, v]) a.dispose();
  }
}

/** Channels of the `small` model's four blocks (two conv3x3 + BN + ReLU each, then pool). */
const SMALL_CHANNELS = [16, 32, 64, 128];

/** He-initialized parameters of the `small` model, flat: per conv [w, gamma, beta], then head. */
export function smallParams(): Array[] {
  const params: Array[] = [];
  let cin = 1;
  for (const c of SMALL_CHANNELS) {
    for (let i = 0; i < 2; i++) {
      params.push(random([c, cin, 3, 3], Math.sqrt(2 / (9 * cin))), np.ones([c]), np.zeros([c]));
      cin = c;
    }
  }
  params.push(random([cin + 1, 64], Math.sqrt(2 / (cin + 1))), np.zeros([64]));
  params.push(random([64, 1], Math.sqrt(1 / 64)), np.zeros([1]));
  return params;
}

/**
 * The `small` model's L1 loss on a batch (image NCHW `[n, 1, 96, 96]`, sex `[n, 1]`, age
 * `[n, 1]`) and, as aux, every BN layer's batch mean and variance. Consumes its arguments.
 */
function smallLoss(params: Array[], image: Array, sex: Array, age: Array): [Array, Array[]] {
  const stats: Array[] = [];
  let h = image;
  let k = 0;
  for (let block = 0; block < SMALL_CHANNELS.length; block++) {
    for (let i = 0; i < 2; i++) {
      const conv = lax.convGeneralDilated(h, params[k++], [1, 1], [[1, 1], [1, 1]]);
      const [y, mean, variance] = batchNorm(conv, params[k++], params[k++]);
      stats.push(mean, variance);
      h = nn.relu(y);
    }
    h = maxPool2(h);
  }
  const features = np.concatenate([h.mean([2, 3]), sex], 1);
  const hidden = nn.relu(np.matmul(features, params[k++]).add(params[k++]));
  const prediction = np.matmul(hidden, params[k++]).add(params[k++]);
  return [np.abs(prediction.sub(age)).mean(), stats];
}

/** State of the jitted training step: parameters, Adam moments, BN running statistics. */
type TrainState = { ps: Array[]; ms: Array[]; vs: Array[]; running: Array[] };

/** One whole training step: loss and gradients, Adam, BN running averages. Consumes all. */
function trainStep(state: TrainState, image: Array, sex: Array, age: Array, lrT: Array) {
  const [[loss, stats], grads] = valueAndGrad(smallLoss, { hasAux: true })(
    state.ps.map((p) => p.ref),
    image,
    sex,
    age,
  );
  const { ps, ms, vs } = adam(state.ps, grads, state.ms, state.vs, lrT);
  const running = state.running.map((r, i) => r.mul(0.9).add(stats[i].mul(0.1)));
  return { loss, state: { ps, ms, vs, running } };
}

/**
 * Mean ms of one jitted training step (forward, backward, Adam lr 1e-3, L1 loss) of the
 * `small` model at `batch` random 96x96x1 images, over `repeats` steps run back to back with
 * one wait at the end; one warm-up step (which compiles) first.
 */
export async function timeTrainStep(
  batch: number,
  repeats: number,
): Promise<{ msPerStep: number }> {
  const ps = smallParams();
  let state: TrainState = {
    ps,
    ms: ps.map((p) => np.zeros(p.shape)),
    vs: ps.map((p) => np.zeros(p.shape)),
    running: SMALL_CHANNELS.flatMap((c) => [c, c, c, c]).map((c, i) =>
      i % 2 ? np.ones([c]) : np.zeros([c])
    ),
  };
  const image = random([batch, 1, 96, 96]);
  const sex = np.array(Float32Array.from({ length: batch }, () => Math.random() < 0.5 ? 0 : 1), {
    shape: [batch, 1],
  });
  const age = random([batch, 1]);
  const step = jit(trainStep);
  let t = 0;
  const run = async (steps: number) => {
    let last: Array | null = null;
    for (let i = 0; i < steps; i++) {
      last?.dispose();
      const out = step(state, image.ref, sex.ref, age.ref, np.array(adamStepSize(1e-3, ++t)));
      state = out.state;
      last = out.loss;
    }
    // One read per run, like our own timing: each step's state feeds the next, so the last
    // loss waits for all of them.
    const loss = (await last!.data())[0];
    if (!Number.isFinite(loss)) throw new Error(`jax-js peer: loss is ${loss}`);
  };
  const steps = Math.max(1, repeats);
  let msPerStep = NaN;
  try {
    await run(1); // compiles
    const t0 = performance.now();
    await run(steps);
    msPerStep = (performance.now() - t0) / steps;
  } finally {
    step.dispose();
    for (const a of [...state.ps, ...state.ms, ...state.vs, ...state.running, image, sex, age]) {
      a.dispose();
    }
  }
  return { msPerStep };
}
