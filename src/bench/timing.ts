/**
 * Timing of recorded GPU work: warm up (pipelines compile), then several runs that each
 * record `repeats` copies of the work into one submit and wait for the GPU; the median run
 * divided by `repeats` is the time of one copy. Recording many copies per wait amortizes
 * the ~11 ms that every GPU wait costs in Deno.
 *
 * @module
 */
import type { Engine } from "../engine.ts";
import type { Tensor } from "../tensor.ts";
import { median } from "./peak.ts";

/** A feature map `[n, h, w, c]` (NHWC) for the memory-bound benchmarks. */
export interface MapShape {
  /** Batch size. */
  n: number;
  /** Height (even for max-pool). */
  h: number;
  /** Width (even for max-pool). */
  w: number;
  /** Channels. */
  c: number;
}

/** Options of {@link timeRecorded}. */
export interface TimingOptions {
  /** Copies recorded per timed run (default 5). */
  repeats?: number;
  /** Timed runs; the median is reported (default 5). */
  runs?: number;
  /** Untimed runs first (default 1). */
  warmup?: number;
}

/**
 * Median milliseconds of one call of `once`, which records GPU work; tensors it creates are
 * disposed after each call (inside `engine.tidy`).
 */
export async function timeRecorded(
  engine: Engine,
  once: () => void,
  options: TimingOptions = {},
): Promise<number> {
  const repeats = Math.max(1, options.repeats ?? 5);
  const runs = Math.max(1, options.runs ?? 5);
  const call = () => engine.tidy(() => void once());
  for (let i = 0; i < (options.warmup ?? 1); i++) {
    call();
    await engine.sync();
  }
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    await engine.sync();
    const t0 = performance.now();
    for (let i = 0; i < repeats; i++) {
      call();
      engine.flush();
    }
    await engine.sync();
    times.push((performance.now() - t0) / repeats);
  }
  return median(times);
}

/** A tensor of seeded uniform values in [-0.5, 0.5), never exactly zero. */
export function randomTensor(engine: Engine, shape: number[], seed: number): Tensor {
  let state = seed >>> 0;
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = state / 2 ** 32 - 0.5 || 0.25;
  }
  return engine.tensor(data, shape);
}
