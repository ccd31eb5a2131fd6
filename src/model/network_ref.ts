/**
 * Float64 CPU twin of {@link BoneAgeNet}'s training forward and backward pass, built from the
 * per-op references. It is what the whole-network gradient tests check the GPU against, and
 * itself checked against finite differences.
 *
 * Backpropagation here is written out by hand: the forward pass pushes one closure per layer
 * that, given the gradient of that layer's output, returns the gradient of its input and
 * stores the gradients of its parameters. Running the closures in reverse is all a tape does.
 *
 * @module
 */
import { headLayer, type ModelConfig, outputCount, planLayers, usesSex } from "./configs.ts";
import { batchNormTrainBackward, batchNormTrainForward } from "../ref/batchnorm.ts";
import { concatBackward, concatForward } from "../ref/concat.ts";
import {
  conv2dBackwardBias,
  conv2dBackwardData,
  conv2dBackwardWeight,
  conv2dForward,
} from "../ref/conv2d.ts";
import { eluBackward, eluForward } from "../ref/elu.ts";
import { linearBackward, linearForward } from "../ref/linear.ts";
import { lossBackward, lossForward } from "../ref/loss.ts";
import {
  globalAvgPoolBackward,
  globalAvgPoolForward,
  maxPool2dBackward,
  maxPool2dForward,
} from "../ref/pool.ts";
import { reluBackward, reluForward } from "../ref/relu.ts";

/** Loss, prediction and (optionally) the gradient of every trainable parameter. */
export interface RefNetworkResult {
  /** Mean L1 loss. */
  loss: number;
  /** Predictions `[N, outputs]`. */
  pred: Float64Array;
  /** Gradients by parameter name (same names and layouts as `BoneAgeNet`). */
  grads: Map<string, Float64Array>;
}

/**
 * Runs the network of `config` in training mode (batch statistics, no dropout) on `images`
 * `[N, H, W, 1]` and `male` `[N]` (ignored without the sex input), with L1 loss against
 * `target` `[N, outputs]`.
 * `params` maps `BoneAgeNet` names to values in our layouts (conv HWIO, linear [In, Out]).
 */
export function refNetwork(
  config: ModelConfig,
  params: ReadonlyMap<string, Float64Array>,
  images: Float64Array,
  N: number,
  male: Float64Array,
  target: Float64Array,
  eps = 1e-5,
): RefNetworkResult {
  if (config.dropout > 0) throw new Error("refNetwork: dropout is not modeled");
  const p = (name: string) => {
    const v = params.get(name);
    if (!v) throw new Error(`refNetwork: missing parameter ${name}`);
    return v;
  };
  const grads = new Map<string, Float64Array>();
  const backward: ((dy: Float64Array) => Float64Array)[] = [];
  let x = images;
  const plan = planLayers(config, N);
  for (const { name, spec, input: [, h, w, c], window } of plan) {
    const input = x;
    if (spec.type === "conv") {
      const g = window!;
      const bias = params.get(`${name}.bias`) ?? null;
      x = conv2dForward(input, p(`${name}.weight`), bias, g);
      backward.push((dy) => {
        grads.set(`${name}.weight`, conv2dBackwardWeight(input, dy, g));
        if (bias) grads.set(`${name}.bias`, conv2dBackwardBias(dy, g));
        return conv2dBackwardData(dy, p(`${name}.weight`), g);
      });
    } else if (spec.type === "bn") {
      const M = N * h * w;
      x = batchNormTrainForward(input, M, c, p(`${name}.weight`), p(`${name}.bias`), eps).y;
      backward.push((dy) => {
        const r = batchNormTrainBackward(dy, input, M, c, p(`${name}.weight`), eps);
        grads.set(`${name}.weight`, r.dgamma);
        grads.set(`${name}.bias`, r.dbeta);
        return r.dx;
      });
    } else if (spec.type === "relu") {
      x = reluForward(input);
      backward.push((dy) => reluBackward(input, dy));
    } else if (spec.type === "elu") {
      x = eluForward(input);
      backward.push((dy) => eluBackward(input, dy));
    } else {
      const { kernel: K, stride: S } = spec;
      const r = maxPool2dForward(input, N, h, w, c, K, S);
      x = r.y;
      backward.push((dy) => maxPool2dBackward(dy, r.argmax, N, h, w, c, K, S));
    }
  }
  const [, H, W, C] = plan.at(-1)!.output;

  let features: number;
  if (config.pool === "global-avg") {
    const [h, w, c] = [H, W, C];
    x = globalAvgPoolForward(x, N, h, w, c);
    backward.push((dy) => globalAvgPoolBackward(dy, N, h, w, c));
    features = c;
  } else {
    features = H * W * C; // NHWC flatten is the identity on the data
  }
  if (usesSex(config)) {
    const A = features;
    x = concatForward(x, male, N, A, 1);
    backward.push((dy) => concatBackward(dy, N, A, 1).da);
    features = A + 1;
  }
  const widths = [...config.dense, outputCount(config)];
  widths.forEach((out, i) => {
    const input = x;
    const inF = features;
    const layer = headLayer(config, i);
    const w = p(`${layer}.weight`);
    x = linearForward(input, w, p(`${layer}.bias`), N, inF, out);
    backward.push((dy) => {
      const r = linearBackward(input, w, dy, N, inF, out);
      grads.set(`${layer}.weight`, r.dw);
      grads.set(`${layer}.bias`, r.db);
      return r.dx;
    });
    features = out;
    if (i < widths.length - 1) {
      const pre = x;
      const act = config.activation;
      x = act === "relu" ? reluForward(pre) : eluForward(pre);
      backward.push((dy) => act === "relu" ? reluBackward(pre, dy) : eluBackward(pre, dy));
    }
  });

  const pred = x;
  const loss = lossForward("l1", pred, target);
  let grad = lossBackward("l1", pred, target, 1);
  for (let k = backward.length - 1; k >= 0; k--) grad = backward[k](grad);
  return { loss, pred, grads };
}
