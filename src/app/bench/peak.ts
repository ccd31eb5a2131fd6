/**
 * The adapter's FMA peak: how many GFLOP/s `kernels/fma_peak.wgsl` (independent vec4 fma
 * chains held in registers) reaches. It is the roof our kernels' GFLOP/s are compared to.
 *
 * @module
 */
import { type Engine, grid } from "../../engine/engine.ts";
import { timeRecorded } from "./timing.ts";

/** Options of {@link measurePeakGflops}. */
export interface PeakOptions {
  /**
   * Invocations per dispatch (default 64 Ki on a CPU adapter, many workgroups for every core;
   * 1 Mi elsewhere, several waves of every GPU core).
   */
  invocations?: number;
  /** FMA steps of each chain, rounded up to a multiple of 32 (default 8192). */
  iters?: number;
  /** Timed runs after the warm-up (default 5); the median is reported. */
  repeats?: number;
}

/** Floating-point operations of one dispatch: 3 vec4 chains, 2 flops per fma lane. */
export function peakFlops(invocations: number, iters: number): number {
  return invocations * iters * 3 * 4 * 2;
}

/**
 * Measures the FMA peak in GFLOP/s: the dispatch timed like every other kernel
 * ({@link timeRecorded}: warm-up with the pipeline compile, then runs of several dispatches per
 * GPU wait), and the rate of the median run.
 */
export async function measurePeakGflops(
  engine: Engine,
  options: PeakOptions = {},
): Promise<number> {
  const invocations = options.invocations ?? (engine.info.isFallback ? 64 : 1024) * 1024;
  const iters = Math.ceil((options.iters ?? 8192) / 32) * 32;
  const out = engine.empty([invocations, 4], "fma_peak.out");
  const program = {
    kernel: "fma_peak.wgsl",
    constants: { N: invocations, ITERS: iters },
    dispatch: grid(invocations),
  };
  try {
    const ms = await timeRecorded(engine, () => engine.run(program, { y: out }), {
      repeats: 1,
      runs: options.repeats ?? 5,
    });
    return peakFlops(invocations, iters) / ms / 1e6;
  } finally {
    out.dispose();
  }
}
