/**
 * Checking the tour's ops: the one table from an op's name to its float64 twin (`src/ref/`),
 * its source files, description and FLOPs, and the comparison of GPU results with the twin's.
 *
 * @module
 */

import type { OpAttrs, TapeEntry } from "../../engine/autograd.ts";
import { convFlops, type ConvGeometry } from "../../ops/geometry.ts";
import type { Shape } from "../../engine/tensor.ts";
import type { TourCheck } from "./types.ts";
import * as refBn from "../../ref/batchnorm.ts";
import * as refConcat from "../../ref/concat.ts";
import * as refConv from "../../ref/conv2d.ts";
import * as refElu from "../../ref/elu.ts";
import * as refLinear from "../../ref/linear.ts";
import * as refLoss from "../../ref/loss.ts";
import * as refPool from "../../ref/pool.ts";
import * as refRelu from "../../ref/relu.ts";

export const SOURCES: Record<string, [string, string]> = {
  conv2d: ["src/ops/conv2d.ts", "src/ref/conv2d.ts"],
  batchNorm2d: ["src/ops/batchnorm.ts", "src/ref/batchnorm.ts"],
  relu: ["src/ops/relu.ts", "src/ref/relu.ts"],
  elu: ["src/ops/elu.ts", "src/ref/elu.ts"],
  maxPool2d: ["src/ops/pool.ts", "src/ref/pool.ts"],
  globalAvgPool: ["src/ops/pool.ts", "src/ref/pool.ts"],
  reshape: ["src/ops/reshape.ts", "(identity)"],
  concatFeatures: ["src/ops/concat.ts", "src/ref/concat.ts"],
  linear: ["src/ops/linear.ts", "src/ref/linear.ts"],
  l1Loss: ["src/ops/loss.ts", "src/ref/loss.ts"],
  adam: ["src/model/optim.ts", "src/ref/optim.ts"],
};

/** `max |got - want| / max |want|` (Infinity if `got` has a non-finite value). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

export function compare(
  name: string,
  shape: Shape,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
): TourCheck {
  // Where the reference is largest, then three positions spread over the tensor.
  let big = 0;
  for (let i = 1; i < want.length; i++) if (Math.abs(want[i]) > Math.abs(want[big])) big = i;
  const n = want.length;
  const at = [...new Set([big, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4)])]
    .slice(0, 4);
  return {
    name,
    shape: [...shape],
    at,
    gpu: at.map((i) => got[i]),
    ref: at.map((i) => want[i]),
    relError: relativeError(got, want),
  };
}

/** A shape as the text writes it, e.g. `[1, 96, 96, 16]`. */
export const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;

type F64 = Float64Array;

/** What the tour knows of one op: its description, FLOPs and float64 twin (`src/ref/`). */
interface Twin {
  detail(entry: TapeEntry, isPrediction: boolean): string;
  flops?(attrs: OpAttrs): number;
  forward(attrs: OpAttrs, inputs: F64[]): F64;
  /** Gradients of each input (null where the GPU computed none: `needs` false). */
  backward(attrs: OpAttrs, inputs: F64[], dy: F64, needs: boolean[]): (F64 | null)[];
}

const conv = (a: OpAttrs) => a as unknown as ConvGeometry & { hasBias: boolean };
const bn = (a: OpAttrs) => a as unknown as { M: number; C: number; eps: number };
const pool = (a: OpAttrs) =>
  a as unknown as { N: number; H: number; W: number; C: number; kernel: number; stride: number };
const dense = (a: OpAttrs) => a as unknown as { N: number; In: number; Out: number };
const joined = (a: OpAttrs) => a as unknown as { N: number; A: number; B: number };
const only = (gs: F64[], needs: boolean[]) => gs.map((g, i) => (needs[i] ? g : null));

/** The one table from an op's name to its twin. */
export const TWINS: Record<string, Twin> = {
  conv2d: {
    detail: ({ attrs }) => {
      const g = conv(attrs);
      return `${g.KH}x${g.KW}, pad ${g.padding}, ${g.Cin} -> ${g.Cout} channels` +
        (g.hasBias ? "" : ", no bias (BN follows)");
    },
    flops: (a) => convFlops(conv(a)),
    forward: (a, v) => refConv.conv2dForward(v[0], v[1], conv(a).hasBias ? v[2] : null, conv(a)),
    backward: (a, v, dy, needs) => [
      needs[0] ? refConv.conv2dBackwardData(dy, v[1], conv(a)) : null,
      needs[1] ? refConv.conv2dBackwardWeight(v[0], dy, conv(a)) : null,
      ...(conv(a).hasBias ? [needs[2] ? refConv.conv2dBackwardBias(dy, conv(a)) : null] : []),
    ],
  },
  batchNorm2d: {
    detail: ({ attrs }) => `batch statistics over ${bn(attrs).M} values per channel`,
    forward: (a, v) => refBn.batchNormTrainForward(v[0], bn(a).M, bn(a).C, v[1], v[2], bn(a).eps).y,
    backward: (a, v, dy, needs) => {
      const r = refBn.batchNormTrainBackward(dy, v[0], bn(a).M, bn(a).C, v[1], bn(a).eps);
      return only([r.dx, r.dgamma, r.dbeta], needs);
    },
  },
  relu: {
    detail: () => "",
    forward: (_, v) => refRelu.reluForward(v[0]),
    backward: (_, v, dy) => [refRelu.reluBackward(v[0], dy)],
  },
  elu: {
    detail: () => "",
    forward: (_, v) => refElu.eluForward(v[0]),
    backward: (_, v, dy) => [refElu.eluBackward(v[0], dy)],
  },
  maxPool2d: {
    detail: ({ attrs }) =>
      `${pool(attrs).kernel}x${pool(attrs).kernel} windows, stride ${pool(attrs).stride}`,
    forward: (a, v) => {
      const { N, H, W, C, kernel, stride } = pool(a);
      return refPool.maxPool2dForward(v[0], N, H, W, C, kernel, stride).y;
    },
    backward: (a, v, dy) => {
      const { N, H, W, C, kernel, stride } = pool(a);
      const { argmax } = refPool.maxPool2dForward(v[0], N, H, W, C, kernel, stride);
      return [refPool.maxPool2dBackward(dy, argmax, N, H, W, C, kernel, stride)];
    },
  },
  globalAvgPool: {
    detail: ({ attrs }) => `mean over ${pool(attrs).H}x${pool(attrs).W} pixels`,
    forward: (a, v) =>
      refPool.globalAvgPoolForward(v[0], pool(a).N, pool(a).H, pool(a).W, pool(a).C),
    backward: (a, _, dy) => [
      refPool.globalAvgPoolBackward(dy, pool(a).N, pool(a).H, pool(a).W, pool(a).C),
    ],
  },
  reshape: {
    detail: ({ inputs, output }) => `${shapeText(inputs[0].shape)} -> ${shapeText(output.shape)}`,
    forward: (_, v) => v[0].slice(),
    backward: (_, __, dy) => [dy.slice()],
  },
  concatFeatures: {
    detail: ({ attrs }) => `${joined(attrs).A} image features + ${joined(attrs).B} sex feature`,
    forward: (a, v) => refConcat.concatForward(v[0], v[1], joined(a).N, joined(a).A, joined(a).B),
    backward: (a, _, dy, needs) => {
      const r = refConcat.concatBackward(dy, joined(a).N, joined(a).A, joined(a).B);
      return only([r.da, r.db], needs);
    },
  },
  linear: {
    detail: ({ attrs }, isPrediction) =>
      `${dense(attrs).In} -> ${dense(attrs).Out}` + (isPrediction ? " (the prediction)" : ""),
    flops: (a) => 2 * dense(a).N * dense(a).In * dense(a).Out,
    forward: (a, v) =>
      refLinear.linearForward(v[0], v[1], v[2], dense(a).N, dense(a).In, dense(a).Out),
    backward: (a, v, dy, needs) => {
      const r = refLinear.linearBackward(v[0], v[1], dy, dense(a).N, dense(a).In, dense(a).Out);
      return only([r.dx, r.dw, r.db], needs);
    },
  },
  l1Loss: {
    detail: () => "against the target bone age",
    forward: (_, v) => Float64Array.of(refLoss.lossForward("l1", v[0], v[1])),
    backward: (_, v, dy, needs) => {
      const g = refLoss.lossBackward("l1", v[0], v[1], dy[0]);
      return only([g, g.map((x) => -x)], needs);
    },
  },
};
