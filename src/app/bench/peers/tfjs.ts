/**
 * Benchmark peer: TensorFlow.js 4.22 on its WebGPU backend (`@tensorflow/tfjs-backend-webgpu`),
 * on the same adapter as our engine (Deno's `navigator.gpu`).
 *
 * No shim is needed on Deno 2.9: the backend starts from `navigator.gpu` alone and never
 * reaches for `document` or `OffscreenCanvas` in the ops used here. Backend flags stay at
 * their defaults (tfjs "as shipped"); `WEBGPU_CPU_FORWARD` may run an op whose inputs are
 * already on the CPU and small (under 1,000 elements) there.
 *
 * Layouts are tfjs' own: NHWC images, HWIO filters. Every timing awaits a one-element read
 * of the result, which waits for the GPU to finish all the work queued before it.
 *
 * @module
 */
import * as tf from "npm:@tensorflow/tfjs@4.22.0";
import "npm:@tensorflow/tfjs-backend-webgpu@4.22.0";
import type { ConvPass } from "../conv.ts";
import { type ConvGeometry, outputSize } from "../../../ops/geometry.ts";
import { calibrateRepeats, type MapShape, median } from "../timing.ts";

export type { ConvPass } from "../conv.ts";
export type { ConvGeometry } from "../../../ops/geometry.ts";
export type { MapShape } from "../timing.ts";

/** Selects tfjs' WebGPU backend; throws with the reason when it cannot start. */
export async function setup(): Promise<void> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new Error("tfjs peer: this runtime has no navigator.gpu (WebGPU)");
  }
  let ok = false;
  try {
    ok = await tf.setBackend("webgpu");
  } catch (e) {
    throw new Error(`tfjs peer: the webgpu backend failed to start: ${e}`);
  }
  if (!ok || tf.getBackend() !== "webgpu") {
    throw new Error(`tfjs peer: the webgpu backend failed to start (backend: ${tf.getBackend()})`);
  }
  await tf.ready();
}

/** Random values in [0.5, 1.5) with a random sign: never zero, like real activations. */
function random(shape: number[]): tf.Tensor {
  return tf.tidy(() => {
    const magnitude = tf.randomUniform(shape, 0.5, 1.5);
    return tf.where(tf.randomUniform(shape).less(0.5), magnitude.neg(), magnitude);
  });
}

/** Waits for `t` (and everything queued before it) by reading one element back. */
async function settle(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => t.reshape([-1]).slice(0, 1));
  await one.data();
  one.dispose();
}

/**
 * Runs `op` once to warm up, then `repeats` timed batches of `copies` calls that end with one
 * settle (the queue runs in order, so the last result's arrival means all are done); `copies`
 * grows as in our own timing ({@link calibrateRepeats}). The median ms per call.
 */
async function timeOp(op: () => tf.Tensor, repeats: number): Promise<number> {
  const batch = async (copies: number) => {
    const t0 = performance.now();
    for (let i = 1; i < copies; i++) op().dispose();
    const y = op();
    await settle(y);
    y.dispose();
    return performance.now() - t0;
  };
  await batch(1);
  const copies = await calibrateRepeats(1, batch);
  const times: number[] = [];
  for (let r = 0; r < Math.max(1, repeats); r++) times.push(await batch(copies) / copies);
  return median(times);
}

/** Median ms of one convolution pass (`pad` applied on every side) on random inputs. */
export async function timeConv2d(
  s: ConvGeometry,
  pass: ConvPass,
  repeats: number,
): Promise<number> {
  const { OH: ho, OW: wo } = outputSize(s);
  const x = random([s.N, s.H, s.W, s.Cin]) as tf.Tensor4D;
  const w = random([s.KH, s.KW, s.Cin, s.Cout]) as tf.Tensor4D;
  const dy = random([s.N, ho, wo, s.Cout]) as tf.Tensor4D;
  const pad = s.padding;
  const ops: Record<ConvPass, () => tf.Tensor> = {
    forward: () => tf.conv2d(x, w, s.stride, pad),
    backwardData: () => tf.conv2dTranspose(dy, w, [s.N, s.H, s.W, s.Cin], s.stride, pad),
    // No public op for dL/dw: call the kernel that tf.grad(conv2d) would run.
    backwardWeight: () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: s.stride,
        pad,
        dataFormat: "NHWC",
        filterShape: [s.KH, s.KW, s.Cin, s.Cout],
      }) as tf.Tensor,
  };
  try {
    return await timeOp(ops[pass], repeats);
  } finally {
    tf.dispose([x, w, dy]);
  }
}

/** Median ms of a 2x2 stride-2 max-pool, forward or backward (dL/dx from dL/dy). */
export async function timeMaxPool(
  s: MapShape,
  pass: "forward" | "backward",
  repeats: number,
): Promise<number> {
  const x = random([s.n, s.h, s.w, s.c]) as tf.Tensor4D;
  const y = tf.maxPool(x, 2, 2, "valid");
  const dy = random(y.shape);
  const op = pass === "forward"
    ? () => tf.maxPool(x, 2, 2, "valid")
    : () =>
      tf.engine().runKernel("MaxPoolGrad", { dy, input: x, output: y }, {
        filterSize: 2,
        strides: 2,
        pad: "valid",
      }) as tf.Tensor;
  try {
    return await timeOp(op, repeats);
  } finally {
    tf.dispose([x, y, dy]);
  }
}

/** Median ms of batch norm in training mode: batch moments, then normalize, scale, shift. */
export async function timeBatchNorm(s: MapShape, repeats: number): Promise<number> {
  const x = random([s.n, s.h, s.w, s.c]) as tf.Tensor4D;
  const gamma = random([s.c]) as tf.Tensor1D;
  const beta = random([s.c]) as tf.Tensor1D;
  const op = () =>
    tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x, mean, variance, beta, gamma, 1e-5);
    });
  try {
    return await timeOp(op, repeats);
  } finally {
    tf.dispose([x, gamma, beta]);
  }
}

/** Median ms of one Adam update (tf.train.adam) of a single `size`-element parameter. */
export async function timeAdam(size: number, repeats: number): Promise<number> {
  const p = tf.variable(random([size]));
  const g = random([size]);
  const adam = tf.train.adam(1e-3);
  // A handle on p (timeOp disposes what op returns; the variable itself must stay).
  const op = () => {
    adam.applyGradients([{ name: p.name, tensor: g }]);
    return p.clone();
  };
  try {
    return await timeOp(op, repeats);
  } finally {
    tf.dispose([p, g]);
    adam.dispose();
  }
}

/**
 * The `small` bone-age model in tfjs-layers: four blocks of [conv3x3 -> batch norm -> ReLU]
 * x2 -> max-pool 2 (16, 32, 64, 128 channels), global average pool, the sex feature
 * appended (129), dense 64 + ReLU, dense 1. Inputs: image `[96, 96, 1]`, sex `[1]`.
 */
export function smallModel(): tf.LayersModel {
  const image = tf.input({ shape: [96, 96, 1] });
  const sex = tf.input({ shape: [1] });
  let h = image as tf.SymbolicTensor;
  for (const filters of [16, 32, 64, 128]) {
    for (let i = 0; i < 2; i++) {
      h = tf.layers.conv2d({ filters, kernelSize: 3, padding: "same", useBias: false })
        .apply(h) as tf.SymbolicTensor;
      h = tf.layers.batchNormalization({ epsilon: 1e-5 }).apply(h) as tf.SymbolicTensor;
      h = tf.layers.reLU().apply(h) as tf.SymbolicTensor;
    }
    h = tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }).apply(h) as tf.SymbolicTensor;
  }
  h = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  h = tf.layers.concatenate().apply([h, sex]) as tf.SymbolicTensor;
  h = tf.layers.dense({ units: 64, activation: "relu" }).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 1 }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: [image, sex], outputs: out });
}

/**
 * Median ms of one training step (forward, backward, Adam lr 1e-3, L1 loss) of
 * {@link smallModel} at `batch` random 96x96x1 images, via `model.trainOnBatch` (which
 * reads the loss back, so each step ends with the GPU idle). One warm-up step first.
 */
export async function timeTrainStep(
  batch: number,
  repeats: number,
): Promise<{ msPerStep: number }> {
  const model = smallModel();
  const optimizer = tf.train.adam(1e-3);
  model.compile({ optimizer, loss: "meanAbsoluteError" });
  const image = tf.randomUniform([batch, 96, 96, 1], 0.05, 1);
  const sex = tf.tidy(() => tf.randomUniform([batch, 1]).greater(0.5).toFloat());
  const age = tf.randomUniform([batch, 1], 0.5, 1.5);
  const times: number[] = [];
  try {
    for (let r = -1; r < Math.max(1, repeats); r++) {
      const t0 = performance.now();
      const loss = await model.trainOnBatch([image, sex], age);
      if (!Number.isFinite(loss as number)) throw new Error(`tfjs peer: loss is ${loss}`);
      if (r >= 0) times.push(performance.now() - t0);
    }
  } finally {
    tf.dispose([image, sex, age]);
    model.dispose();
    optimizer.dispose();
  }
  return { msPerStep: median(times) };
}
