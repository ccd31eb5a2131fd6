/**
 * Times one pass of our convolution (forward, dL/dx or dL/dw) on one shape, the way the
 * benchmark tables report it: FLOPs over median wall time.
 *
 * @module
 */
import type { Engine } from "../../engine/engine.ts";
import { conv2dBackwardData, conv2dBackwardWeight, conv2dForward } from "../../ops/conv2d.ts";
import { convFlops, type ConvGeometry, outputSize } from "../../ops/geometry.ts";
import { randomTensor, timeRecorded, type TimingOptions } from "./timing.ts";

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

/**
 * Times `pass` of the convolution `g` on random inputs: `warmup` untimed runs, then
 * `runs` timed runs, each recording `repeats` passes into one submit bracketed by
 * `engine.sync()`. Returns the median time per pass and its GFLOP/s.
 */
export async function timeConv(
  engine: Engine,
  g: ConvGeometry,
  pass: ConvPass,
  options: TimingOptions = {},
): Promise<ConvTiming> {
  const { OH, OW } = outputSize(g);
  const opts = { stride: g.stride, padding: g.padding };
  const x = randomTensor(engine, [g.N, g.H, g.W, g.Cin], 1);
  const w = randomTensor(engine, [g.KH, g.KW, g.Cin, g.Cout], 2);
  const dy = randomTensor(engine, [g.N, OH, OW, g.Cout], 3);
  const once = () =>
    pass === "forward"
      ? conv2dForward(x, w, null, opts)
      : pass === "backwardData"
      ? conv2dBackwardData(dy, w, x.shape, opts)
      : conv2dBackwardWeight(x, dy, w.shape, opts);
  try {
    const ms = await timeRecorded(engine, once, options);
    const flops = convFlops(g);
    return { ms, flops, gflops: flops / ms / 1e6 };
  } finally {
    for (const t of [x, w, dy]) t.dispose();
  }
}
