/**
 * Batches of an {@link ImageSet} on the GPU, streamed one step ahead.
 *
 * Each epoch visits every row of the split once, in a seeded shuffled order (or in the
 * given order without shuffling), in batches of `batchSize`; the last batch holds the
 * remainder (it is included, smaller). A batch's images go up as raw bytes (four pixels per
 * 32-bit word, a quarter of the f32 size) and are augmented and normalized on the GPU by
 * `kernels/augment.wgsl`, which can also resample them to a smaller side (the `side` option).
 *
 * Streaming: when the training loop asks for batch k (at the start of step k, right after
 * step k-1 was submitted), the loader first packs and uploads batch k+1's bytes and labels
 * with `engine.write` (queue.writeBuffer), then uploads batch k's augmentation parameters
 * (small, and they depend on the side asked for now) and records the augmentation kernel
 * for batch k, whose bytes went up one step earlier. The uploads come
 * before any kernel of the step is recorded and go into buffers no unsubmitted command uses,
 * so they never force an extra submit: a training step stays one submit, and the data for a
 * step is already in the queue before the step that precedes it has finished.
 *
 * Determinism: the order depends on `(seed, epoch)` only, and image j of batch k draws its
 * augmentation from `(hash(seed, epoch), k, j)`, so a rerun reproduces every batch.
 *
 * @module
 */
import type { Engine } from "../engine/engine.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  Augmenter,
  type AugmentRanges,
  hashSeed,
  type ImageAugment,
  packedWords,
} from "../ops/augment.ts";
import { mulberry32 } from "../util.ts";
import type { ImageSet } from "./dataset.ts";

/** How a {@link Loader} batches, augments and normalizes. */
export interface LoaderOptions {
  /** Images per batch (the last batch of an epoch may be smaller). */
  batchSize: number;
  /** Seeds the shuffles and the augmentations. */
  seed: number;
  /** Shuffle each epoch (training); false keeps the index order (validation). */
  shuffle: boolean;
  /** Random augmentation (training); false applies the identity (evaluation). */
  augment: boolean;
  /** Mean of the data set's pixels in [0, 1] units. */
  pixelMean: number;
  /** Standard deviation of the data set's pixels in [0, 1] units. */
  pixelStd: number;
  /** Mean bone age in months; targets are `(boneage - ageMean) / ageSD`. */
  ageMean: number;
  /** Standard deviation of the bone age in months. */
  ageSD: number;
  /** Bounds of the random augmentation (default: `DEFAULT_RANGES`). */
  ranges?: AugmentRanges;
  /**
   * Side the images are resampled to, asked as each batch is augmented, so the training loop
   * can switch resolution between any two steps (default: the set's side).
   */
  side?: () => number;
}

/**
 * One batch. Its tensors belong to the loader: they stay valid until the loop asks for the
 * next batch (or leaves the epoch), when the loader disposes them. Disposing them earlier
 * is harmless; keeping them longer needs a copy.
 */
export interface Batch {
  /** Augmented, normalized images, `[count, side, side, 1]`. */
  images: Tensor;
  /** 1 for male, 0 for female, `[count, 1]`. */
  male: Tensor;
  /** Standardized bone age, `[count, 1]`. */
  target: Tensor;
  /** Image ids, in batch order. */
  ids: string[];
  /** Rows of the image set, in batch order. */
  rows: number[];
  /** Number of images (= batchSize except maybe for the last batch). */
  count: number;
  /** Position of the batch in its epoch, from 0. */
  index: number;
  /** The augmentation parameters the kernel used (layout of `packParams`). */
  params: Float32Array;
  /** Each image's drawn augmentation (identity without `augment`), in batch order. */
  augments: ImageAugment[];
}

/** Where the loader's time went, accumulated over its lifetime. */
export interface LoaderStats {
  /** Batches handed out. */
  batches: number;
  /** Milliseconds the training loop spent inside the loader (it waited for data). */
  waitMs: number;
  /** Of which packing bytes and labels on the CPU and queueing their upload. */
  uploadMs: number;
}

/** Uploaded, not yet augmented: what one step prepares for the next. */
interface Staged {
  index: number;
  rows: number[];
  pixels: Tensor;
  male: Tensor;
  target: Tensor;
}

/** Streams the batches of one split of an image set; see the module doc. */
export class Loader {
  /** The engine the batches live on. */
  readonly engine: Engine;
  /** The image set the rows index into. */
  readonly set: ImageSet;
  /** The split: rows of `set`, in their unshuffled order. */
  readonly indices: Int32Array;
  /** The options the loader was built with. */
  readonly options: Readonly<LoaderOptions>;
  /** The augmentation kernel runner. */
  readonly augmenter: Augmenter;
  /** Time accounting, see {@link LoaderStats}. */
  readonly stats: LoaderStats = { batches: 0, waitMs: 0, uploadMs: 0 };
  // One CPU scratch for the packed bytes of the largest batch: writeBuffer copies the data
  // when it is called, so the same memory serves every batch.
  #scratch: Uint8Array;

  /** A loader over the rows `indices` of `set`. */
  constructor(engine: Engine, set: ImageSet, indices: ArrayLike<number>, options: LoaderOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`Loader: invalid batch size ${batchSize}`);
    }
    if (indices.length === 0) throw new Error("Loader: empty index list");
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i];
      if (!Number.isInteger(r) || r < 0 || r >= set.ids.length) {
        throw new Error(`Loader: index ${r} at position ${i} is not a row of the image set`);
      }
    }
    this.engine = engine;
    this.set = set;
    this.indices = Int32Array.from(indices);
    this.options = { ...options };
    this.augmenter = new Augmenter(engine, set.size, options.ranges);
    this.#scratch = new Uint8Array(packedWords(batchSize, set.size) * 4);
  }

  /** Batches per epoch, the last partial one included. */
  get batchesPerEpoch(): number {
    return Math.ceil(this.indices.length / this.options.batchSize);
  }

  /** The rows of `epoch` in visiting order: a seeded Fisher-Yates shuffle, or the split as is. */
  order(epoch: number): Int32Array {
    const order = this.indices.slice();
    if (!this.options.shuffle) return order;
    const rand = mulberry32(hashSeed(this.options.seed, epoch, 0x5eed));
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    return order;
  }

  /**
   * The batches of `epoch`. Iterate it once, running one training step per batch; leaving
   * the loop early (break/throw) releases everything the loader holds.
   */
  *epoch(epoch: number): Generator<Batch, void, undefined> {
    const order = this.order(epoch);
    const n = this.batchesPerEpoch;
    const augmentSeed = hashSeed(this.options.seed, epoch);
    let staged: Staged | null = null;
    let current: (Staged & { images: Tensor }) | null = null;
    try {
      for (let k = 0; k < n; k++) {
        const t0 = performance.now();
        // The previous batch's step has been recorded (and normally submitted) by now.
        if (current) this.#release(current);
        current = null;
        const ready: Staged = staged ?? this.#stage(order, k);
        staged = k + 1 < n ? this.#stage(order, k + 1) : null;
        // The parameters go up now, not with the bytes, because the side is decided per step.
        const { augment, pixelMean, pixelStd, side } = this.options;
        const outSide = side?.() ?? this.set.size;
        const count = ready.rows.length;
        const registrations = this.set.registration &&
          ready.rows.map((r) => this.set.registration!.subarray(6 * r, 6 * r + 6));
        const { augments, params: paramValues } = this.augmenter.params(
          augmentSeed,
          k,
          count,
          augment,
          pixelMean,
          pixelStd,
          outSide,
          registrations,
        );
        const images = this.engine.keep(this.engine.tidy(() => {
          const params = this.engine.tensor(paramValues, [paramValues.length], "augment params");
          return this.augmenter.run(ready.pixels, params, outSide);
        }));
        current = { ...ready, images };
        this.stats.batches++;
        this.stats.waitMs += performance.now() - t0;
        yield {
          images,
          male: ready.male,
          target: ready.target,
          ids: ready.rows.map((r) => this.set.ids[r]),
          rows: ready.rows,
          count,
          index: k,
          params: paramValues,
          augments,
        };
      }
    } finally {
      if (current) this.#release(current);
      if (staged) this.#release(staged);
    }
  }

  /** Packs batch `k` of `order` on the CPU and queues its upload into pooled tensors. */
  #stage(order: Int32Array, k: number): Staged {
    const t0 = performance.now();
    const { batchSize, ageMean, ageSD } = this.options;
    const e = this.engine;
    const set = this.set;
    const plane = set.size * set.size;
    const rows = Array.from(order.subarray(k * batchSize, (k + 1) * batchSize));
    const count = rows.length;
    const words = packedWords(count, set.size);
    const bytes = this.#scratch.subarray(0, words * 4);
    const male = new Float32Array(count);
    const target = new Float32Array(count);
    rows.forEach((r, j) => {
      bytes.set(set.images.subarray(r * plane, (r + 1) * plane), j * plane);
      male[j] = set.male[r];
      target[j] = (set.boneage[r] - ageMean) / ageSD;
    });
    // Bytes past the last image stay from an earlier batch; the kernel never reads them.
    // keep(): the caller may be inside a tidy scope, and these must survive until step k.
    const staged: Staged = {
      index: k,
      rows,
      pixels: e.keep(e.tensor(new Float32Array(bytes.buffer, 0, words), [words], "pixels")),
      male: e.keep(e.tensor(male, [count, 1], "male")),
      target: e.keep(e.tensor(target, [count, 1], "target")),
    };
    this.stats.uploadMs += performance.now() - t0;
    return staged;
  }

  #release(s: Staged & { images?: Tensor }): void {
    s.pixels.dispose();
    s.male.dispose();
    s.target.dispose();
    s.images?.dispose();
  }
}
