/**
 * Bone-age on a hand-written WebGPU engine: the public API.
 *
 * - The engine: {@link Engine} (kernels, buffers, scopes, tape), {@link Tensor}, the ops in
 *   `src/ops/` and {@link Adam}.
 * - The model: {@link BoneAgeNet} and its named configurations ({@link CONFIGS}).
 * - The data: {@link loadImageSet} (Kaggle-layout folders, cached), {@link splitDataset},
 *   {@link Loader} (GPU augmentation), {@link writeSynthDataset}.
 * - Training and prediction: {@link trainModel}, {@link predictMonths}, checkpoints.
 * - Registration: the hand models ({@link trainKeypoints}, {@link trainHandedness}),
 *   {@link findHands}, and the image recipe every consumer prepares images by
 *   ({@link prepareImageSet}).
 *
 * @example
 * ```ts
 * import { Engine, relu } from "./mod.ts";
 * const engine = await Engine.create();
 * const y = relu(engine.tensor([-1, 2, -3, 4], [4]));
 * console.log(await y.read()); // Float32Array [0, 2, 0, 4]
 * ```
 *
 * @module
 */
export * from "./src/engine/device.ts";
export * from "./src/engine/engine.ts";
export * from "./src/engine/tensor.ts";
export * from "./src/engine/pool.ts";
export * from "./src/engine/autograd.ts";

export * from "./src/ops/conv2d.ts";
export * from "./src/ops/pool.ts";
export * from "./src/ops/batchnorm.ts";
export * from "./src/ops/relu.ts";
export * from "./src/ops/elu.ts";
export * from "./src/ops/linear.ts";
export * from "./src/ops/concat.ts";
export * from "./src/ops/dropout.ts";
export * from "./src/ops/elementwise.ts";
export * from "./src/ops/loss.ts";
export * from "./src/ops/reshape.ts";
export { sumMiddle } from "./src/ops/reduce.ts";
export * from "./src/model/optim.ts";

export * from "./src/model/configs.ts";
export * from "./src/model/network.ts";
export * from "./src/app/safetensors.ts";
export * from "./src/app/checkpoint.ts";
export * from "./src/app/training.ts";
export * from "./src/app/schedule.ts";
export * from "./src/app/predict.ts";
export * from "./src/app/eval_report.ts";
export * from "./src/app/occlusion.ts";
export * from "./src/app/wording.ts";
export * from "./src/app/keypoints.ts";
export * from "./src/app/registration.ts";
export * from "./src/data/recipe.ts";
export * from "./src/app/prepare.ts";

export { type ImageSet, mirroredImageSet, subsetImageSet } from "./src/data/dataset.ts";
export { loadImageSet, type LoadOptions, type LoadResult } from "./src/data/load.ts";
export { findDataset, readLabels } from "./src/data/layout.ts";
export { decodeGray, fitSquare, letterbox } from "./src/data/image.ts";
export { readKeypoints } from "./src/data/keypoints.ts";
export { readSplit, type Split, splitDataset, writeSplit } from "./src/data/split.ts";
export { pixelStats } from "./src/data/stats.ts";
export { Loader, type LoaderOptions } from "./src/data/loader.ts";
export { Augmenter } from "./src/ops/augment.ts";
export { writeSynthDataset } from "./src/data/synth.ts";
