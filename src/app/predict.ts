/**
 * Batched prediction of bone age in months from a checkpoint's model, with test-time
 * augmentation: what validation, `eval` and `predict` share.
 *
 * @module
 */
import { type Normalization } from "./checkpoint.ts";
import type { ImageSet } from "../data/dataset.ts";
import { type AugmentRanges, DEFAULT_RANGES } from "../ops/augment.ts";
import { Loader } from "../data/loader.ts";
import { BoneAgeNet } from "../model/network.ts";
import type { Tensor } from "../engine/tensor.ts";

/** Test-time augmentation: the training ranges' geometry, no exposure changes. */
export const TTA_RANGES: AugmentRanges = {
  rotationDeg: DEFAULT_RANGES.rotationDeg,
  shift: DEFAULT_RANGES.shift,
  scale: DEFAULT_RANGES.scale,
  brightness: 0,
  contrast: [1, 1],
  gamma: [1, 1],
};

/**
 * Predicted bone age in months for rows `indices` of `set`, in batches, with batch norm's
 * running statistics. With `tta` > 0 the prediction is the mean over the plain image and
 * `tta` mildly transformed copies (no flips: a right hand is not a left hand).
 */
export async function predictMonths(
  model: BoneAgeNet,
  set: ImageSet,
  indices: ArrayLike<number>,
  norm: Normalization,
  { batchSize = 64, tta = 0 }: { batchSize?: number; tta?: number } = {},
): Promise<Float32Array> {
  const e = model.engine;
  const out = new Float32Array(indices.length);
  for (let pass = 0; pass <= tta; pass++) {
    const loader = new Loader(e, set, indices, {
      batchSize,
      seed: pass,
      shuffle: false,
      augment: pass > 0,
      ranges: TTA_RANGES,
      pixelMean: norm.pixelMean,
      pixelStd: norm.pixelStd,
      ageMean: norm.ageMean,
      ageSD: norm.ageStd,
    });
    const pending: { at: number; pred: Tensor }[] = [];
    let at = 0;
    for (const batch of loader.epoch(0)) {
      const pred = e.noGrad(() => e.tidy(() => model.forward(batch.images, batch.male, false)));
      pending.push({ at, pred });
      at += batch.count;
    }
    for (const { at, pred } of pending) {
      const values = await pred.read();
      for (let i = 0; i < values.length; i++) {
        out[at + i] += (values[i] * norm.ageStd + norm.ageMean) / (tta + 1);
      }
      pred.dispose();
    }
  }
  const broken = out.findIndex((v) => !Number.isFinite(v));
  if (broken >= 0) {
    throw new Error(
      `the model's estimate for ${set.ids[indices[broken]]} is ${out[broken]} months: ` +
        `its checkpoint's weights or normalization are broken`,
    );
  }
  return out;
}

/** Mean absolute error between two equally long arrays. */
export function meanAbsoluteError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}
