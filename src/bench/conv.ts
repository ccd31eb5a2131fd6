/**
 * Times one pass of our convolution (forward, dL/dx or dL/dw) on one shape, the way the
 * benchmark tables report it: FLOPs over median wall time.
 *
 * @module
 */
import type { Engine } from "../engine.ts";
import { conv2dBackwardData, conv2dBackwardWeight, conv2dForward } from "../ops/conv2d.ts";
import { randomTensor, timeRecorded, type TimingOptions } from "./timing.ts";

/** One convolution layer: NHWC input `[n, h, w, cin]`, `k x k` filter to `cout` channels. */
export interface ConvShape {
  /** Batch size. */
  n: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Input channels. */
  cin: number;
  /** Output channels. */
  cout: number;
  /** Filter size (k x k). */
  k: number;
  /** Stride in both spatial dimensions. */
  stride: number;
  /** Zero padding on every side. */
  pad: number;
}

/** Which convolution kernel to time: y = conv(x, w), dx = dL/dx, dw = dL/dw. */
export type ConvPass = "forward" | "backwardData" | "backwardWeight";

/** Result of {@link timeConv}. */
export interface ConvTiming {
  /** Median milliseconds of one pass. */
  ms: number;
  /** Floating-point operations of one pass. */
  flops: number;
  /** flops / ms, in GFLOP/s. */
  gflops: number;
}

/** Output height and width of a shape. */
export function convOutputSize(s: ConvShape): { oh: number; ow: number } {
  return {
    oh: Math.floor((s.h + 2 * s.pad - s.k) / s.stride) + 1,
    ow: Math.floor((s.w + 2 * s.pad - s.k) / s.stride) + 1,
  };
}

/** FLOPs of each of the three passes: 2 * N * OH * OW * Cout * K * K * Cin. */
export function convFlops(s: ConvShape): number {
  const { oh, ow } = convOutputSize(s);
  return 2 * s.n * oh * ow * s.cout * s.k * s.k * s.cin;
}

/**
 * Times `pass` of a convolution of shape `s` on random inputs: `warmup` untimed runs, then
 * `runs` timed runs, each recording `repeats` passes into one submit bracketed by
 * `engine.sync()`. Returns the median time per pass and its GFLOP/s.
 */
export async function timeConv(
  engine: Engine,
  s: ConvShape,
  pass: ConvPass,
  options: TimingOptions = {},
): Promise<ConvTiming> {
  const { oh, ow } = convOutputSize(s);
  const opts = { stride: s.stride, padding: s.pad };
  const x = randomTensor(engine, [s.n, s.h, s.w, s.cin], 1);
  const w = randomTensor(engine, [s.k, s.k, s.cin, s.cout], 2);
  const dy = randomTensor(engine, [s.n, oh, ow, s.cout], 3);
  const once = () =>
    pass === "forward"
      ? conv2dForward(x, w, null, opts)
      : pass === "backwardData"
      ? conv2dBackwardData(dy, w, x.shape, opts)
      : conv2dBackwardWeight(x, dy, w.shape, opts);
  try {
    const ms = await timeRecorded(engine, once, options);
    const flops = convFlops(s);
    return { ms, flops, gflops: flops / ms / 1e6 };
  } finally {
    for (const t of [x, w, dy]) t.dispose();
  }
}
