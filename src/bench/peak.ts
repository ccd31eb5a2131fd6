/**
 * The adapter's FMA peak: how many GFLOP/s `kernels/fma_peak.wgsl` (independent vec4 fma
 * chains held in registers) reaches. It is the roof our kernels' GFLOP/s are compared to.
 *
 * @module
 */
import { type Engine, grid, WG } from "../engine.ts";

/** Options of {@link measurePeakGflops}. */
export interface PeakOptions {
  /** Invocations per dispatch (default 64 Ki: many workgroups for every core). */
  invocations?: number;
  /** FMA steps of each chain, rounded up to a multiple of 32 (default 8192). */
  iters?: number;
  /** Timed repeats after the warm-up (default 5); the median is reported. */
  repeats?: number;
}

/** Floating-point operations of one dispatch: 3 vec4 chains, 2 flops per fma lane. */
export function peakFlops(invocations: number, iters: number): number {
  return invocations * iters * 3 * 4 * 2;
}

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Measures the FMA peak in GFLOP/s: one warm-up dispatch (pipeline compile included), then
 * `repeats` dispatches each bracketed by `engine.sync()`, and returns the median rate.
 */
export async function measurePeakGflops(
  engine: Engine,
  options: PeakOptions = {},
): Promise<number> {
  const invocations = options.invocations ?? 64 * 1024;
  const iters = Math.ceil((options.iters ?? 8192) / 32) * 32;
  const repeats = Math.max(1, options.repeats ?? 5);
  const out = engine.empty([invocations, 4], "fma_peak.out");
  const program = {
    kernel: "fma_peak.wgsl",
    constants: { N: invocations, ITERS: iters, WG },
    dispatch: grid(invocations),
  };
  try {
    await engine.sync();
    engine.run(program, [out]);
    await engine.sync();
    const rates: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const t0 = performance.now();
      engine.run(program, [out]);
      await engine.sync();
      const seconds = (performance.now() - t0) / 1000;
      rates.push(peakFlops(invocations, iters) / seconds / 1e9);
    }
    return median(rates);
  } finally {
    out.dispose();
  }
}
