/**
 * Seeded, reproducible inverted dropout. Kernel: `dropout.wgsl` (forward and backward).
 * CPU twin: `src/ref/dropout.ts` (same integer hash, so masks compare exactly).
 *
 * Element `i` is kept when `hash(i, seed) >= round(p * 2^32)` and kept elements are scaled by
 * `1 / (1 - p)`; the backward recomputes the same mask from the seed instead of storing it.
 *
 * The seed changes every step, so it is not a kernel constant (that would compile a pipeline
 * per step): it lives in a one-element "seed tensor" holding the seed's u32 bits, which the
 * kernel reads. Usage in a model:
 *
 * ```ts
 * const drop = new Dropout(engine, 0.3); // once; owns a persistent seed tensor
 * const h = drop.forward(features, step, training); // each step, inside tidy
 * ```
 *
 * `forward` writes the seed with `engine.write` (no allocation) before recording. Because the
 * backward kernel reads the seed tensor when it runs, one `Dropout` must not be re-seeded
 * while the backward of its previous application is still on the tape; `forward` throws if
 * that happens (use one `Dropout` per call site). The free function `dropout` accepts either
 * such a seed tensor or a plain number, for which it makes a pooled one-element tensor per call.
 *
 * @module
 */
import type { Engine } from "../engine/engine.ts";
import { grid } from "../engine/engine.ts";
import type { Tensor } from "../engine/tensor.ts";

/** The u32 bits of `seed` as the one-element Float32Array a seed tensor holds. */
export function seedBits(seed: number): Float32Array {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new Error(`dropout: seed must be an integer in [0, 2^32), got ${seed}`);
  }
  return new Float32Array(new Uint32Array([seed]).buffer);
}

/** The keep threshold on the 32-bit hash: `round(p * 2^32)`, clamped to u32. */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

function checkP(p: number): void {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
}

/**
 * Inverted dropout of `x` (any shape) with drop probability `p`. `seed` is a number or a
 * one-element seed tensor (see {@link Dropout}). Returns `x` itself when not training or
 * when `p` is 0.
 */
export function dropout(x: Tensor, p: number, seed: number | Tensor, training: boolean): Tensor {
  checkP(p);
  if (!training || p === 0) return x;
  const e = x.engine;
  let seedTensor: Tensor;
  if (typeof seed === "number") {
    seedTensor = e.tensor(seedBits(seed), [1]);
  } else {
    if (seed.size !== 1) {
      throw new Error(`dropout: the seed tensor must have one element, got [${seed.shape}]`);
    }
    seedTensor = seed;
  }
  const n4 = Math.ceil(x.size / 4);
  const program = {
    kernel: "dropout.wgsl",
    constants: { N4: n4, THRESH: dropoutThreshold(p), SCALE: 1 / (1 - p) },
    dispatch: grid(n4),
  };
  const y = e.empty(x.shape);
  e.run(program, { params: seedTensor, x, y });
  e.tape.record("dropout", [x], y, (dy) => {
    const dx = e.empty(x.shape);
    e.run(program, { params: seedTensor, x: dy, y: dx });
    return [dx];
  });
  return y;
}

/** A dropout layer: drop probability plus a persistent seed tensor (see the module doc). */
export class Dropout {
  /** Drop probability in [0, 1). */
  readonly p: number;
  /** One-element tensor holding the current seed's u32 bits; outlives tidy scopes. */
  readonly seed: Tensor;
  #engine: Engine;
  #lastSeed = -1;
  #lastOutput: Tensor | null = null;

  /** Allocates the seed tensor once. */
  constructor(engine: Engine, p: number) {
    checkP(p);
    this.p = p;
    this.#engine = engine;
    this.seed = engine.keep(engine.tensor(seedBits(0), [1], "dropout seed"));
    this.#lastSeed = 0;
  }

  /**
   * Dropout of `x` with this step's `seed` (an integer in [0, 2^32)); identity when not
   * training. Throws if the previous application's backward is still pending with a
   * different seed.
   */
  forward(x: Tensor, seed: number, training: boolean): Tensor {
    if (!training || this.p === 0) return x;
    const bits = seedBits(seed);
    if (seed !== this.#lastSeed) {
      const last = this.#lastOutput;
      if (last && !last.disposed && this.#engine.tape.entries.some((en) => en.output === last)) {
        throw new Error(
          `Dropout: re-seeded (${this.#lastSeed} -> ${seed}) while the backward of its previous ` +
            "application is still on the tape; use one Dropout per call site",
        );
      }
      this.#engine.write(this.seed, bits);
      this.#lastSeed = seed;
    }
    const y = dropout(x, this.p, this.seed, true);
    this.#lastOutput = y;
    return y;
  }

  /** Frees the seed tensor. */
  dispose(): void {
    this.seed.dispose();
  }
}
