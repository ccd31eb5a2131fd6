/**
 * The hand keypoint model behind registration: the `keypoints` configuration of
 * {@link BoneAgeNet} regresses the middle fingertip, the thumb tip and the wrist
 * ({@link KEYPOINTS}) as fractions of its 64x64 input frame, mapped to [-1, 1]. It trains with
 * the same loader, augmentation kernel, ops and Adam as the bone-age model; each image's random
 * warp moves its targets with it ({@link augmentPoint}).
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
import { CONFIGS } from "../model/configs.ts";
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

/** What a keypoint checkpoint's JSON holds besides the weights. */
export interface KeypointMeta {
  format: 1;
  kind: "keypoints";
  /** The `keypoints` configuration, stored whole. */
  config: typeof CONFIGS.keypoints;
  /** The regressed points, in output order. */
  points: readonly string[];
  /** Pixel statistics of the training images, in [0, 1] units. */
  normalization: { pixelMean: number; pixelStd: number };
  /** How it was trained, and its held-out errors. */
  settings: Record<string, unknown>;
  evaluation: Record<string, unknown>;
  /** Research-use notice carried with the weights. */
  notice: string;
}

/** The notice every shipped checkpoint carries. */
export const RESEARCH_NOTICE =
  "For research and education only; not a medical device. Trained on RSNA 2017 Pediatric Bone " +
  "Age Challenge radiographs (research use).";

/** Files of a keypoint checkpoint in its folder. */
export const KEYPOINT_FILES = { weights: "keypoints.safetensors", meta: "keypoints.json" };

/** Training settings of {@link trainKeypoints}. */
export interface KeypointTrainOptions {
  engine: Engine;
  /** Images of the keypoint model's side, and their targets (frame fractions, 6 per image). */
  set: ImageSet;
  targets: Float32Array;
  /** Rows of `set` to train on. */
  rows: number[];
  epochs: number;
  batch: number;
  lr: number;
  seed: number;
  /** Called after each epoch with its mean training loss (frame fractions x 2). */
  onEpoch?: (epoch: number, loss: number, seconds: number) => void;
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
 * Trains a keypoint model; returns it with its pixel statistics. Every training image is also
 * shown mirrored, its points mirrored with it, so the model finds the real thumb of a right
 * hand too: the thumb's side is then what tells `findHands` a right hand from a left one.
 */
export async function trainKeypoints(
  o: KeypointTrainOptions,
): Promise<{ model: BoneAgeNet; normalization: KeypointMeta["normalization"] }> {
  const e = o.engine;
  const config = CONFIGS.keypoints;
  if (o.set.size !== config.inputHeight) {
    throw new Error(`keypoint images must be ${config.inputHeight} px, got ${o.set.size}`);
  }
  const [pixelMean, pixelStd] = pixelMoments(o.set, o.rows);
  const model = new BoneAgeNet(e, config, o.seed + 1);
  const optimizer = new Adam(e, model.parameters(), { lr: o.lr });
  // Rows n.. are rows 0.. mirrored (by the resampler, through each row's registration).
  const count = o.set.ids.length, S = o.set.size;
  const registration = new Float32Array(12 * count);
  for (let r = 0; r < 2 * count; r++) {
    registration.set(r < count ? [1, 0, 0, 0, 1, 0] : mirrorAffine(S), 6 * r);
  }
  const both: ImageSet = {
    ...o.set,
    ids: [...o.set.ids, ...o.set.ids.map((id) => `${id} (mirrored)`)],
    images: new Uint8Array([...o.set.images, ...o.set.images]),
    male: new Uint8Array(2 * count),
    boneage: new Float32Array(2 * count),
    registration,
  };
  const pointsOf = new Float32Array(2 * o.targets.length);
  pointsOf.set(o.targets);
  for (let i = 0; i < o.targets.length; i++) {
    pointsOf[o.targets.length + i] = i % 2 === 0 ? 1 - o.targets[i] : o.targets[i];
  }
  const rows = [...o.rows, ...o.rows.map((r) => r + count)];
  const loader = new Loader(e, both, rows, {
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
  const n = KEYPOINTS.length;
  let step = 0;
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const t0 = performance.now();
    let lossSum: Tensor | null = null;
    for (const batch of loader.epoch(epoch)) {
      const targets = new Float32Array(batch.count * 2 * n);
      batch.rows.forEach((r, j) => {
        for (let k = 0; k < n; k++) {
          const [x, y] = augmentPoint(
            batch.augments[j],
            S,
            pointsOf[r * 2 * n + 2 * k],
            pointsOf[r * 2 * n + 2 * k + 1],
          );
          targets[j * 2 * n + 2 * k] = 2 * x - 1;
          targets[j * 2 * n + 2 * k + 1] = 2 * y - 1;
        }
      });
      const previous: Tensor | null = lossSum;
      lossSum = e.tidy(() => {
        const target = e.tensor(targets, [batch.count, 2 * n], "keypoint targets");
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
    if (!Number.isFinite(mean)) throw new Error(`keypoint training diverged at epoch ${epoch + 1}`);
    o.onEpoch?.(epoch + 1, mean, (performance.now() - t0) / 1000);
  }
  return { model, normalization: { pixelMean, pixelStd } };
}

/**
 * Predicted keypoints of `rows` of `set` (any side: each image is resampled to the model's
 * 64x64 input by the augmentation kernel) as fractions of the frame, 6 values per row in
 * {@link KEYPOINTS} order. `view` warps every image first: `pre` (a {@link PixelAffine} of
 * the stored side, e.g. a mirror) and then `augment`; the points are those of the warped frame.
 */
export async function predictKeypoints(
  model: BoneAgeNet,
  normalization: KeypointMeta["normalization"],
  set: ImageSet,
  rows: readonly number[],
  view: { augment?: ImageAugment; pre?: PixelAffine } = {},
  batchSize = 64,
): Promise<Float32Array> {
  const e = model.engine;
  const augmenter = new Augmenter(e, set.size);
  const plane = set.size * set.size;
  const per = 2 * KEYPOINTS.length;
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
    const values = await pred.read();
    for (let i = 0; i < values.length; i++) out[at * per + i] = (values[i] + 1) / 2;
    pred.dispose();
  }
  return out;
}

/** Writes a keypoint checkpoint (weights + JSON) into `dir`, atomically. */
export async function saveKeypointCheckpoint(
  dir: string,
  model: BoneAgeNet,
  meta: Omit<KeypointMeta, "format" | "kind" | "config" | "points" | "notice">,
): Promise<void> {
  const full: KeypointMeta = {
    format: 1,
    kind: "keypoints",
    config: CONFIGS.keypoints,
    points: KEYPOINTS,
    notice: RESEARCH_NOTICE,
    ...meta,
  };
  await Deno.mkdir(dir, { recursive: true });
  await writeAtomic(
    {
      path: `${dir}/${KEYPOINT_FILES.weights}`,
      bytes: await modelToSafetensors(model, { kind: "keypoints", notice: RESEARCH_NOTICE }),
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
  if (JSON.stringify(meta.config) !== JSON.stringify(CONFIGS.keypoints)) {
    bad(
      "config differs from the keypoints configuration of this version; retrain with deno task keypoints",
    );
  }
  if (JSON.stringify(meta.points) !== JSON.stringify(KEYPOINTS)) {
    bad(`points is ${JSON.stringify(meta.points)}, want ${JSON.stringify(KEYPOINTS)}`);
  }
  const norm = meta.normalization as Record<string, unknown> | undefined;
  for (const key of ["pixelMean", "pixelStd"]) {
    const v = norm?.[key];
    if (typeof v !== "number" || !Number.isFinite(v) || (key === "pixelStd" && !(v > 0))) {
      bad(`normalization.${key} is ${JSON.stringify(v)}, not a finite number (std > 0)`);
    }
  }
  return meta as unknown as KeypointMeta;
}

/** Loads a keypoint checkpoint folder written by {@link saveKeypointCheckpoint}. */
export async function loadKeypointModel(
  engine: Engine,
  dir: string,
): Promise<{ model: BoneAgeNet; meta: KeypointMeta }> {
  const metaPath = `${dir}/${KEYPOINT_FILES.meta}`;
  const weightsPath = `${dir}/${KEYPOINT_FILES.weights}`;
  const read = async <T>(path: string, f: (p: string) => Promise<T>) => {
    try {
      return await f(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new DataError(
          "not found: a keypoint checkpoint folder holds keypoints.json and keypoints.safetensors " +
            "(train one with deno task keypoints)",
          path,
        );
      }
      throw err;
    }
  };
  return keypointModelFromFiles(
    engine,
    { path: metaPath, text: await read(metaPath, Deno.readTextFile) },
    { path: weightsPath, bytes: await read(weightsPath, Deno.readFile) },
  );
}

/**
 * Builds the keypoint model from the two files' contents (the reader page fetches them),
 * checking both; errors name `path`.
 */
export function keypointModelFromFiles(
  engine: Engine,
  meta: { path: string; text: string },
  weights: { path: string; bytes: Uint8Array },
): { model: BoneAgeNet; meta: KeypointMeta } {
  const parsed = parseKeypointMeta(meta.text, meta.path);
  const model = new BoneAgeNet(engine, CONFIGS.keypoints);
  loadModelWeights(model, weights.bytes, weights.path);
  return { model, meta: parsed };
}

/**
 * Copies the keypoint checkpoint in `from` to `to` (a bone-age run's own folder, so the run
 * carries the model its recipe registers with), after checking that it loads.
 */
export async function copyKeypointCheckpoint(from: string, to: string): Promise<void> {
  const metaPath = `${from}/${KEYPOINT_FILES.meta}`;
  let text: string, weights: Uint8Array;
  try {
    text = await Deno.readTextFile(metaPath);
    weights = await Deno.readFile(`${from}/${KEYPOINT_FILES.weights}`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new DataError(
      "is not a keypoint checkpoint folder: it needs keypoints.json and keypoints.safetensors " +
        "(train one with deno task keypoints)",
      from,
    );
  }
  parseKeypointMeta(text, metaPath);
  await Deno.mkdir(to, { recursive: true });
  await writeAtomic(
    { path: `${to}/${KEYPOINT_FILES.weights}`, bytes: weights },
    { path: `${to}/${KEYPOINT_FILES.meta}`, bytes: text },
  );
}
