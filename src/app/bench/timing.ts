/**
 * Timing of recorded GPU work: warm up (pipelines compile), then several runs that each
 * record `repeats` copies of the work into one submit and wait for the GPU; the median run
 * divided by `repeats` is the time of one copy. Recording many copies per wait amortizes
 * the ~11 ms that every GPU wait costs in Deno; on a fast GPU `repeats` grows until a run
 * lasts {@link MIN_RUN_MS}, so that the wait is a small part of it.
 *
 * @module
 */
import type { Engine } from "../../engine/engine.ts";
import type { Tensor } from "../../engine/tensor.ts";

/** Median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

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
  /** Copies recorded per timed run, at least (default 5; more while a run is too short). */
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
  const runs = Math.max(1, options.runs ?? 5);
  const call = () => engine.tidy(() => void once());
  for (let i = 0; i < (options.warmup ?? 1); i++) {
    call();
    await engine.sync();
  }
  const run = async (copies: number) => {
    await engine.sync();
    const t0 = performance.now();
    for (let i = 0; i < copies; i++) {
      call();
      engine.flush();
    }
    await engine.sync();
    return performance.now() - t0;
  };
  const repeats = await calibrateRepeats(Math.max(1, options.repeats ?? 5), run);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) times.push(await run(repeats) / repeats);
  return median(times);
}

/** Shortest timed run wanted, in ms: the ~11 ms GPU wait is then at most ~10% of it. */
export const MIN_RUN_MS = 100;
/** Most copies per timed run. */
const MAX_REPEATS = 1024;

/**
 * Grows `repeats` fourfold until one `run(repeats)` (which returns its ms) lasts
 * {@link MIN_RUN_MS}; on lavapipe a run of the starting count already does.
 */
export async function calibrateRepeats(
  repeats: number,
  run: (copies: number) => Promise<number>,
): Promise<number> {
  while (repeats < MAX_REPEATS && await run(repeats) < MIN_RUN_MS) repeats *= 4;
  return Math.min(repeats, MAX_REPEATS);
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
