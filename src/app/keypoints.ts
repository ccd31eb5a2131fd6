/**
 * The hand models behind registration, trained by the same loader, augmentation kernel, ops
 * and Adam as the bone-age model:
 * - the `keypoints` configuration of {@link BoneAgeNet} regresses the middle fingertip, the
 *   thumb tip and the wrist ({@link KEYPOINTS}) of a left hand as fractions of its 64x64 input
 *   frame, mapped to [-1, 1]; each image's random warp moves its targets with it
 *   ({@link augmentPoint});
 * - the `handedness` configuration tells a left hand from a right one (a mirror image), so
 *   that a right hand is mirrored before its points are looked for.
 * Both live in one keypoint checkpoint folder ({@link KEYPOINT_FILES}).
 *
 * @module
 */
import { DataError } from "../data/report.ts";
import { KEYPOINTS } from "../data/recipe.ts";
import {
  Augmenter,
  augmentPoint,
  type AugmentRanges,
  IDENTITY,
  type ImageAugment,
  mirrorAffine,
  packBytes,
  packedWords,
  packParams,
  type PixelAffine,
} from "../ops/augment.ts";
import type { ImageSet } from "../data/dataset.ts";
import { Loader } from "../data/loader.ts";
import type { Engine } from "../engine/engine.ts";
import { CONFIGS, type ModelConfig, outputCount } from "../model/configs.ts";
import { BoneAgeNet } from "../model/network.ts";
import { l1Loss } from "../ops/loss.ts";
import { Adam } from "../model/optim.ts";
import { learningRate } from "./schedule.ts";
import { loadModelWeights, modelToSafetensors, writeAtomic } from "./checkpoint.ts";
import type { Tensor } from "../engine/tensor.ts";

/** Side of the keypoint model's input. */
export const KEYPOINT_SIDE = CONFIGS.keypoints.inputHeight;

/**
 * The keypoint model's augmentation: wider than the bone-age ranges, because it must find
 * hands however they were framed (the registration's job is to undo exactly that).
 */
export const KEYPOINT_RANGES: AugmentRanges = {
  rotationDeg: 25,
  shift: 0.1,
  scale: 0.2,
  brightness: 0.1,
  contrast: [0.75, 1.3],
  gamma: [0.7, 1.4],
};

/** Pixel statistics of a hand model's training images, in [0, 1] units. */
export interface PixelNormalization {
  pixelMean: number;
  pixelStd: number;
}

/** What a keypoint checkpoint's JSON holds besides the weights. */
export interface KeypointMeta {
  format: 1;
  kind: "keypoints";
  /** The `keypoints` configuration, stored whole. */
  config: typeof CONFIGS.keypoints;
  /** The regressed points, in output order. */
  points: readonly string[];
  normalization: PixelNormalization;
  /** How it was trained, and its held-out errors. */
  settings: Record<string, unknown>;
  evaluation: Record<string, unknown>;
  /**
   * The handedness model of the folder. Absent in folders written before it existed: their
   * hands are all taken as left hands, as the keypoint model was trained on.
   */
  handedness?: HandednessMeta;
  /** Research-use notice carried with the weights. */
  notice: string;
}

/** The handedness model's part of a keypoint checkpoint's JSON. */
export interface HandednessMeta {
  /** The `handedness` configuration, stored whole. */
  config: typeof CONFIGS.handedness;
  normalization: PixelNormalization;
  settings: Record<string, unknown>;
  evaluation: Record<string, unknown>;
}

/** The handedness model, ready to run. */
export interface HandednessModel {
  model: BoneAgeNet;
  normalization: PixelNormalization;
}

/** A loaded keypoint checkpoint folder: what registration needs to find a hand. */
export interface HandFinder {
  model: BoneAgeNet;
  meta: KeypointMeta;
  /** Null for a folder without one: every hand is then taken as a left hand. */
  handedness: HandednessModel | null;
}

/** The notice every shipped checkpoint carries. */
export const RESEARCH_NOTICE =
  "For research and education only; not a medical device. Trained on RSNA 2017 Pediatric Bone " +
  "Age Challenge radiographs (research use).";

/** Files of a keypoint checkpoint in its folder. */
export const KEYPOINT_FILES = {
  weights: "keypoints.safetensors",
  meta: "keypoints.json",
  handedness: "handedness.safetensors",
};

/** Settings shared by {@link trainKeypoints} and {@link trainHandedness}. */
export interface HandTrainOptions {
  engine: Engine;
  /** Images of the models' side ({@link KEYPOINT_SIDE}). */
  set: ImageSet;
  /** Rows of `set` to train on. */
  rows: number[];
  epochs: number;
  batch: number;
  lr: number;
  seed: number;
  /** Called after each epoch with its mean training loss. */
  onEpoch?: (epoch: number, loss: number, seconds: number) => void;
}

/** Training settings of {@link trainKeypoints}. */
export interface KeypointTrainOptions extends HandTrainOptions {
  /** Targets of every row of `set`: frame fractions, x and y of each of {@link KEYPOINTS}. */
  targets: Float32Array;
}

/** A trained hand model with the pixel statistics its inputs are normalized by. */
export interface TrainedHandModel {
  model: BoneAgeNet;
  normalization: PixelNormalization;
}

/** Pixel mean and standard deviation of `rows` of `set`, in [0, 1] units. */
function pixelMoments(set: ImageSet, rows: readonly number[]): [number, number] {
  const plane = set.size * set.size;
  let sum = 0, sq = 0;
  for (const r of rows) {
    for (let i = r * plane; i < (r + 1) * plane; i++) {
      const v = set.images[i] / 255;
      sum += v;
      sq += v * v;
    }
  }
  const n = rows.length * plane, mean = sum / n;
  return [mean, Math.sqrt(Math.max(1e-12, sq / n - mean * mean))];
}

/**
 * The training loop of both hand models: `config` on `o.rows` of `o.set` with the wide
 * {@link KEYPOINT_RANGES} augmentation, L1 loss against `targetsOf(batch)` (which sees each
 * image's random warp), Adam with the bone-age model's schedule.
 */
async function trainHandModel(
  o: HandTrainOptions,
  config: ModelConfig,
  targetsOf: (rows: readonly number[], augments: readonly ImageAugment[]) => Float32Array,
): Promise<TrainedHandModel> {
  const e = o.engine;
  if (o.set.size !== config.inputHeight) {
    throw new Error(`${config.name} images must be ${config.inputHeight} px, got ${o.set.size}`);
  }
  const [pixelMean, pixelStd] = pixelMoments(o.set, o.rows);
  const model = new BoneAgeNet(e, config, o.seed + 1);
  const optimizer = new Adam(e, model.parameters(), { lr: o.lr });
  const loader = new Loader(e, o.set, o.rows, {
    batchSize: o.batch,
    seed: o.seed,
    shuffle: true,
    augment: true,
    ranges: KEYPOINT_RANGES,
    pixelMean,
    pixelStd,
    ageMean: 0,
    ageSD: 1,
  });
  const totalSteps = o.epochs * loader.batchesPerEpoch;
  const width = outputCount(config);
  let step = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const t0 = performance.now();
    let lossSum: Tensor | null = null;
    for (const batch of loader.epoch(epoch)) {
      const targets = targetsOf(batch.rows, batch.augments);
      const previous: Tensor | null = lossSum;
      lossSum = e.tidy(() => {
        const target = e.tensor(targets, [batch.count, width], `${config.name} targets`);
        const loss = l1Loss(model.forward(batch.images, null, true, step), target);
        optimizer.step(
          e.gradients(loss, model.parameters()),
          learningRate(o.lr, step, totalSteps),
        );
        return previous ? e.add(previous, loss) : e.add(loss, e.full([1], 0));
      });
      (previous as Tensor | null)?.dispose();
      e.flush();
      step++;
    }
    const mean = (await lossSum!.read())[0] / loader.batchesPerEpoch;
    (lossSum as Tensor | null)?.dispose();
    if (!Number.isFinite(mean)) {
      throw new Error(`${config.name} training diverged at epoch ${epoch + 1}`);
    }
    o.onEpoch?.(epoch + 1, mean, (performance.now() - t0) / 1000);
  }
  return { model, normalization: { pixelMean, pixelStd } };
}

/**
 * Trains the keypoint model on left hands; each image's random warp moves its targets with
 * it ({@link augmentPoint}), which the model regresses in [-1, 1].
 */
export function trainKeypoints(o: KeypointTrainOptions): Promise<TrainedHandModel> {
  const n = KEYPOINTS.length, S = o.set.size;
  return trainHandModel(o, CONFIGS.keypoints, (rows, augments) => {
    const targets = new Float32Array(rows.length * 2 * n);
    rows.forEach((r, j) => {
      for (let k = 0; k < n; k++) {
        const at = r * 2 * n + 2 * k;
        const [x, y] = augmentPoint(augments[j], S, o.targets[at], o.targets[at + 1]);
        targets[j * 2 * n + 2 * k] = 2 * x - 1;
        targets[j * 2 * n + 2 * k + 1] = 2 * y - 1;
      }
    });
    return targets;
  });
}

/**
 * `set` (left hands) followed by each of its images mirrored: row `r + set.ids.length` is
 * row `r` as a right hand would look, flipped by the resampler through its registration.
 */
export function withMirrors(set: ImageSet): ImageSet {
  const count = set.ids.length;
  const registration = new Float32Array(12 * count);
  for (let r = count; r < 2 * count; r++) registration.set(mirrorAffine(set.size), 6 * r);
  for (let r = 0; r < count; r++) registration.set([1, 0, 0, 0, 1, 0], 6 * r);
  const images = new Uint8Array(2 * set.images.length);
  images.set(set.images);
  images.set(set.images, set.images.length);
  return {
    size: set.size,
    ids: [...set.ids, ...set.ids.map((id) => `${id} (mirrored)`)],
    images,
    male: new Uint8Array(2 * count),
    boneage: new Float32Array(2 * count),
    registration,
  };
}

/**
 * Trains the handedness model: `o.rows` of `o.set` (left hands) regressed to +1 and the same
 * images mirrored ({@link withMirrors}) to -1, so the only thing that tells the two apart is
 * which side of the hand the thumb is on.
 */
export function trainHandedness(o: HandTrainOptions): Promise<TrainedHandModel> {
  const count = o.set.ids.length;
  const both = withMirrors(o.set);
  const rows = [...o.rows, ...o.rows.map((r) => r + count)];
  return trainHandModel(
    { ...o, set: both, rows },
    CONFIGS.handedness,
    (batchRows) => Float32Array.from(batchRows, (r) => (r < count ? 1 : -1)),
  );
}

/**
 * What a hand model (keypoints or handedness) answers for `rows` of `set` (any side: each
 * image is resampled to the model's 64x64 input by the augmentation kernel), its outputs per
 * row in order. `view` warps every image first: `pre` (a {@link PixelAffine} of the stored
 * side, e.g. a mirror) and then `augment`.
 */
async function handModelOutputs(
  model: BoneAgeNet,
  normalization: PixelNormalization,
  set: ImageSet,
  rows: readonly number[],
  view: { augment?: ImageAugment; pre?: PixelAffine },
  batchSize = 64,
): Promise<Float32Array> {
  const e = model.engine;
  const augmenter = new Augmenter(e, set.size);
  const plane = set.size * set.size;
  const per = outputCount(model.config);
  const out = new Float32Array(rows.length * per);
  const pending: { at: number; pred: Tensor }[] = [];
  for (let at = 0; at < rows.length; at += batchSize) {
    const chunk = rows.slice(at, at + batchSize);
    const bytes = new Uint8Array(packedWords(chunk.length, set.size) * 4);
    chunk.forEach((r, j) => bytes.set(set.images.subarray(r * plane, (r + 1) * plane), j * plane));
    const params = packParams(
      chunk.map(() => view.augment ?? IDENTITY),
      set.size,
      normalization.pixelMean,
      normalization.pixelStd,
      KEYPOINT_SIDE,
      view.pre && chunk.map(() => view.pre!),
    );
    const pred = e.noGrad(() =>
      e.tidy(() => {
        const pixels = e.tensor(packBytes(bytes), [bytes.length / 4], "pixels");
        const images = augmenter.run(pixels, e.tensor(params, [params.length]), KEYPOINT_SIDE);
        return model.forward(images, null, false);
      })
    );
    pending.push({ at, pred });
  }
  for (const { at, pred } of pending) {
    out.set(await pred.read(), at * per);
    pred.dispose();
  }
  return out;
}

/**
 * Predicted keypoints of `rows` of `set` as fractions of the frame, 6 values per row in
 * {@link KEYPOINTS} order; `view` as for the model's input, the points are those of the
 * warped frame.
 */
export async function predictKeypoints(
  model: BoneAgeNet,
  normalization: PixelNormalization,
  set: ImageSet,
  rows: readonly number[],
  view: { augment?: ImageAugment; pre?: PixelAffine } = {},
): Promise<Float32Array> {
  const out = await handModelOutputs(model, normalization, set, rows, view);
  return out.map((v) => (v + 1) / 2);
}

/**
 * The handedness model's answer for each of `rows` of `set`: near +1 for a left hand, near
 * -1 for a right one (a left hand's mirror image). It is the mean of the model's answer for
 * the image and the opposite of its answer for the image mirrored, so a mirror image always
 * gets exactly the opposite answer.
 */
export async function predictHandedness(
  handedness: HandednessModel,
  set: ImageSet,
  rows: readonly number[],
): Promise<Float32Array> {
  const { model, normalization } = handedness;
  const asIs = await handModelOutputs(model, normalization, set, rows, {});
  const mirrored = await handModelOutputs(model, normalization, set, rows, {
    pre: mirrorAffine(set.size),
  });
  return asIs.map((v, i) => (v - mirrored[i]) / 2);
}

/**
 * Writes a keypoint checkpoint into `dir`, atomically: the keypoint model and the handedness
 * model, weights and one JSON.
 */
export async function saveKeypointCheckpoint(
  dir: string,
  model: BoneAgeNet,
  meta: Omit<KeypointMeta, "format" | "kind" | "config" | "points" | "notice" | "handedness">,
  handedness: { model: BoneAgeNet; meta: Omit<HandednessMeta, "config"> },
): Promise<void> {
  const full: KeypointMeta = {
    format: 1,
    kind: "keypoints",
    config: CONFIGS.keypoints,
    points: KEYPOINTS,
    notice: RESEARCH_NOTICE,
    ...meta,
    handedness: { config: CONFIGS.handedness, ...handedness.meta },
  };
  const stamp = { notice: RESEARCH_NOTICE };
  await Deno.mkdir(dir, { recursive: true });
  await writeAtomic(
    {
      path: `${dir}/${KEYPOINT_FILES.weights}`,
      bytes: await modelToSafetensors(model, { kind: "keypoints", ...stamp }),
    },
    {
      path: `${dir}/${KEYPOINT_FILES.handedness}`,
      bytes: await modelToSafetensors(handedness.model, { kind: "handedness", ...stamp }),
    },
    { path: `${dir}/${KEYPOINT_FILES.meta}`, bytes: JSON.stringify(full, null, 2) + "\n" },
  );
}

/** Checks a keypoint checkpoint's JSON, naming the file and key of the first problem. */
export function parseKeypointMeta(text: string, path: string): KeypointMeta {
  const bad = (what: string): never => {
    throw new DataError(what, path);
  };
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(text);
  } catch (err) {
    return bad(`is not JSON: ${(err as Error).message}`);
  }
  if (typeof meta !== "object" || meta === null) bad("is not a JSON object");
  if (meta.format !== 1 || meta.kind !== "keypoints") {
    bad(`format/kind is ${JSON.stringify([meta.format, meta.kind])}, want [1, "keypoints"]`);
  }
  const checkPart = (part: Record<string, unknown>, key: string, config: ModelConfig) => {
    if (JSON.stringify(part.config) !== JSON.stringify(config)) {
      bad(
        `${key}config differs from the ${config.name} configuration of this version; ` +
          "retrain with deno task keypoints",
      );
    }
    const norm = part.normalization as Record<string, unknown> | undefined;
    for (const name of ["pixelMean", "pixelStd"]) {
      const v = norm?.[name];
      if (typeof v !== "number" || !Number.isFinite(v) || (name === "pixelStd" && !(v > 0))) {
        bad(`${key}normalization.${name} is ${JSON.stringify(v)}, not a finite number (std > 0)`);
      }
    }
  };
  checkPart(meta, "", CONFIGS.keypoints);
  if (JSON.stringify(meta.points) !== JSON.stringify(KEYPOINTS)) {
    bad(`points is ${JSON.stringify(meta.points)}, want ${JSON.stringify(KEYPOINTS)}`);
  }
  if (meta.handedness !== undefined) {
    if (typeof meta.handedness !== "object" || meta.handedness === null) {
      bad("handedness is not an object");
    }
    checkPart(meta.handedness as Record<string, unknown>, "handedness.", CONFIGS.handedness);
  }
  return meta as unknown as KeypointMeta;
}

/** A keypoint checkpoint folder's files, read (the handedness weights when its JSON has them). */
interface KeypointFiles {
  meta: { path: string; text: string };
  weights: { path: string; bytes: Uint8Array };
  handedness: { path: string; bytes: Uint8Array } | null;
}

/** Reads the files of the keypoint checkpoint folder `dir`, naming the one that is missing. */
async function readKeypointFiles(dir: string): Promise<KeypointFiles> {
  const read = async <T>(name: string, f: (p: string) => Promise<T>) => {
    const path = `${dir}/${name}`;
    try {
      return await f(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new DataError(
          `not found: a keypoint checkpoint folder holds ${
            Object.values(KEYPOINT_FILES).join(", ")
          } ` +
            "(train one with deno task keypoints)",
          path,
        );
      }
      throw err;
    }
  };
  const path = (name: string) => `${dir}/${name}`;
  const meta = {
    path: path(KEYPOINT_FILES.meta),
    text: await read(KEYPOINT_FILES.meta, Deno.readTextFile),
  };
  const weights = {
    path: path(KEYPOINT_FILES.weights),
    bytes: await read(KEYPOINT_FILES.weights, Deno.readFile),
  };
  const handedness = parseKeypointMeta(meta.text, meta.path).handedness
    ? {
      path: path(KEYPOINT_FILES.handedness),
      bytes: await read(KEYPOINT_FILES.handedness, Deno.readFile),
    }
    : null;
  return { meta, weights, handedness };
}

/** Loads a keypoint checkpoint folder written by {@link saveKeypointCheckpoint}. */
export async function loadKeypointModel(engine: Engine, dir: string): Promise<HandFinder> {
  const files = await readKeypointFiles(dir);
  return keypointModelFromFiles(engine, files.meta, files.weights, files.handedness);
}

/**
 * Builds the hand finder from its files' contents (the reader page fetches them), checking
 * each; errors name `path`. `handedness` is needed when the JSON describes a handedness model.
 */
export function keypointModelFromFiles(
  engine: Engine,
  meta: { path: string; text: string },
  weights: { path: string; bytes: Uint8Array },
  handedness: { path: string; bytes: Uint8Array } | null,
): HandFinder {
  const parsed = parseKeypointMeta(meta.text, meta.path);
  const model = new BoneAgeNet(engine, CONFIGS.keypoints);
  loadModelWeights(model, weights.bytes, weights.path);
  if (!parsed.handedness) return { model, meta: parsed, handedness: null };
  if (!handedness) {
    throw new DataError(
      `describes a handedness model, but ${KEYPOINT_FILES.handedness} was not given`,
      meta.path,
    );
  }
  const side = new BoneAgeNet(engine, CONFIGS.handedness);
  loadModelWeights(side, handedness.bytes, handedness.path);
  return {
    model,
    meta: parsed,
    handedness: { model: side, normalization: parsed.handedness.normalization },
  };
}

/**
 * Copies the keypoint checkpoint in `from` to `to` (a bone-age run's own folder, so the run
 * carries the models its recipe registers with), after checking its JSON and that its files
 * are there; the weights are checked when the run loads the copy.
 */
export async function copyKeypointCheckpoint(from: string, to: string): Promise<void> {
  const { meta, weights, handedness } = await readKeypointFiles(from);
  const files = [
    { path: `${to}/${KEYPOINT_FILES.meta}`, bytes: meta.text },
    { path: `${to}/${KEYPOINT_FILES.weights}`, bytes: weights.bytes },
  ];
  if (handedness) {
    files.push({ path: `${to}/${KEYPOINT_FILES.handedness}`, bytes: handedness.bytes });
  }
  await Deno.mkdir(to, { recursive: true });
  await writeAtomic(...files);
}
