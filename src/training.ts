/**
 * The training loop behind `deno task train`, and the batched prediction that `eval`,
 * `predict` and validation share.
 *
 * One training step = upload the next batch, record forward + backward + Adam into one
 * command encoder, submit once. The loss is summed on the GPU and read back only every
 * `LOG_EVERY` steps (each read waits for the GPU, which costs more than a step's recording).
 *
 * @module
 */
import {
  type CheckpointMeta,
  checkSameGeneration,
  loadModelWeights,
  modelToSafetensors,
  type Normalization,
  parseCheckpointMeta,
  removeStaleTempFiles,
  writeAtomic,
} from "./checkpoint.ts";
import { DataError } from "./data/report.ts";
import type { ImageSet } from "./data/dataset.ts";
import { type AugmentRanges, DEFAULT_RANGES } from "./data/augment.ts";
import { Loader } from "./data/loader.ts";
import { type Split } from "./data/split.ts";
import type { Engine } from "./engine.ts";
import type { ModelConfig } from "./models.ts";
import { BoneAgeNet } from "./nn.ts";
import { l1Loss } from "./ops/loss.ts";
import { Adam } from "./optim.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";
import type { Recipe } from "./recipe.ts";
import type { Tensor } from "./tensor.ts";

/** What a training run is told on the command line. */
export interface TrainSettings {
  /** Epochs to train (the cosine schedule spans them). */
  epochs: number;
  /** Images per step. */
  batch: number;
  /** Peak learning rate of Adam. */
  lr: number;
  /** Seed of initialization, split, order, augmentation and dropout. */
  seed: number;
  /**
   * Training budget in minutes (0: none). The cosine decay then follows the clock as well as
   * the steps, so the learning rate anneals by the deadline whatever the machine's speed;
   * training stops in time to validate and save.
   */
  timeLimitMinutes: number;
  /** The data folder (recorded so `eval --split val` finds the same images). */
  data: string;
  /** SHA-256 of its label CSV: the data set, wherever it lies (see `readLabels`). */
  dataFingerprint: string;
  /** The convolution kernels that ran (the engine's `kernels`). */
  kernels: "rows" | "generic";
  /** The CSV whose ids were kept out of training and validation (`--exclude`), or null. */
  exclude: string | null;
}

/** One line of `metrics.jsonl`. */
export interface EpochMetrics {
  /** Epoch number, from 1. */
  epoch: number;
  /** Mean L1 loss over the epoch's training steps, in standardized units. */
  train_loss: number;
  /** Same, in months. */
  train_mae_months: number;
  /** Validation MAE in months. */
  val_mae: number;
  /** Learning rate at the end of the epoch. */
  lr: number;
  /** Seconds the epoch took (training and validation). */
  seconds: number;
  /** Training images per second. */
  images_per_s: number;
  /** Present (true) when the time limit ended the epoch early. */
  partial?: boolean;
}

/** Warm-up steps of the schedule: 2% of the steps, at least 1. */
const warmupSteps = (totalSteps: number) => Math.max(1, Math.round(totalSteps * 0.02));

/**
 * Where training stands in its schedule, 0..1: 0 during the warm-up, then the fraction of the
 * decay steps done, or `timeFraction` (the part of a time budget used, 0 without one) when the
 * clock runs ahead of the steps, so a slow machine still anneals before its deadline. The
 * cosine decay and progressive resizing both follow it.
 */
export function scheduleProgress(step: number, totalSteps: number, timeFraction = 0): number {
  const warmup = warmupSteps(totalSteps);
  if (step < warmup) return 0;
  const byStep = (step - warmup) / Math.max(1, totalSteps - warmup);
  return Math.min(1, Math.max(byStep, timeFraction));
}

/**
 * Linear warm-up over 2% of the steps, then cosine decay to 1% of the peak along
 * {@link scheduleProgress}.
 */
export function learningRate(
  peak: number,
  step: number,
  totalSteps: number,
  timeFraction = 0,
): number {
  const warmup = warmupSteps(totalSteps);
  if (step < warmup) return peak * (step + 1) / warmup;
  const t = scheduleProgress(step, totalSteps, timeFraction);
  return peak * (0.01 + 0.99 * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/**
 * Side of the training images at `progress` ({@link scheduleProgress}): the config's
 * low-resolution side early on, then the full input (see `ModelConfig.lowRes`).
 */
export function trainingSide(config: ModelConfig, progress: number): number {
  const { lowRes } = config;
  return lowRes && progress < lowRes.until ? lowRes.side : config.inputHeight;
}

/** What {@link runSecondsLeft} needs to know. */
export interface RunEtaInput {
  /** The model configuration (its `lowRes` schedule decides each step's side). */
  config: ModelConfig;
  /** The next step to run and the run's total. */
  fromStep: number;
  totalSteps: number;
  /** Part of the time budget used (see {@link scheduleProgress}). */
  timeFraction: number;
  /** Measured seconds per step per pixel of the training side. */
  secondsPerPixelStep: number;
  /** Validations still to run, and what one takes. */
  validations: number;
  validationSeconds: number;
  /** Seconds left of the time budget (Infinity without one). */
  budgetLeft: number;
}

/**
 * Seconds the rest of a run should take: each remaining step priced by the pixels of its
 * training side (a 96x96 step costs about (96/64)^2 of a 64x64 one), plus the validations
 * left, and never more than the time budget has left.
 */
export function runSecondsLeft(o: RunEtaInput): number {
  let pixels = 0;
  for (let g = o.fromStep; g < o.totalSteps; g++) {
    pixels += trainingSide(o.config, scheduleProgress(g, o.totalSteps, o.timeFraction)) ** 2;
  }
  const left = pixels * o.secondsPerPixelStep + o.validations * o.validationSeconds;
  return Math.min(left, o.budgetLeft);
}

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

/** File names inside a run folder. */
export const RUN_FILES = {
  metrics: "metrics.jsonl",
  weights: (tag: "last" | "best") => `${tag}.safetensors`,
  meta: (tag: "last" | "best") => `${tag}.json`,
  optimizer: "last.optimizer.safetensors",
} as const;

/**
 * Writes a checkpoint (`tag` = last or best); with `optimizer`, its state too. Every file is
 * stamped with the step and written durably; the JSON is renamed into place last.
 */
export async function saveCheckpoint(
  runDir: string,
  tag: "last" | "best",
  model: BoneAgeNet,
  meta: CheckpointMeta,
  optimizer?: Adam,
): Promise<void> {
  const stamp = {
    epoch: String(meta.epoch),
    step: String(meta.globalStep),
    config: meta.config.name,
  };
  const files = [{
    path: `${runDir}/${RUN_FILES.weights(tag)}`,
    bytes: await modelToSafetensors(model, stamp),
  }];
  if (optimizer) {
    const state = await optimizer.state();
    const arrays = new Map<string, NamedArray>();
    model.parameters().forEach((p, i) => {
      arrays.set(`m.${p.name}`, { shape: [state.m[i].length], data: state.m[i] });
      arrays.set(`v.${p.name}`, { shape: [state.v[i].length], data: state.v[i] });
    });
    files.push({
      path: `${runDir}/${RUN_FILES.optimizer}`,
      bytes: encodeSafetensors(arrays, { ...stamp, adam_step: String(state.step) }),
    });
  }
  await writeAtomic(...files, {
    path: `${runDir}/${RUN_FILES.meta(tag)}`,
    bytes: JSON.stringify(meta, null, 2) + "\n",
  });
}

/** Reads and checks a checkpoint's JSON (see `parseCheckpointMeta`), naming the file. */
export async function readCheckpointMeta(
  runDir: string,
  tag: "last" | "best",
): Promise<CheckpointMeta> {
  const path = `${runDir}/${RUN_FILES.meta(tag)}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `no checkpoint: ${path} does not exist (train first: deno task train --out ${runDir})`,
      );
    }
    throw err;
  }
  return parseCheckpointMeta(text, path, tag);
}

/** Builds the model of a checkpoint and loads its weights (`tag` defaults to best). */
export async function loadCheckpoint(
  engine: Engine,
  runDir: string,
  tag: "last" | "best" = "best",
): Promise<{ model: BoneAgeNet; meta: CheckpointMeta }> {
  const meta = await readCheckpointMeta(runDir, tag);
  const model = new BoneAgeNet(engine, meta.config);
  await loadWeightsOf(model, runDir, tag, meta);
  return { model, meta };
}

/** Loads `tag`'s weights into `model`, checking they are of the save `meta` describes. */
async function loadWeightsOf(
  model: BoneAgeNet,
  runDir: string,
  tag: "last" | "best",
  meta: CheckpointMeta,
): Promise<void> {
  const path = `${runDir}/${RUN_FILES.weights(tag)}`;
  const stamp = loadModelWeights(model, await Deno.readFile(path), path);
  checkSameGeneration(stamp, path, meta, `${runDir}/${RUN_FILES.meta(tag)}`);
}

/** Restores Adam's state saved by {@link saveCheckpoint}, of the save `meta` describes. */
export async function loadOptimizer(
  runDir: string,
  model: BoneAgeNet,
  optimizer: Adam,
  meta: CheckpointMeta,
): Promise<void> {
  const path = `${runDir}/${RUN_FILES.optimizer}`;
  const { tensors, metadata } = decodeSafetensors(await Deno.readFile(path), path);
  checkSameGeneration(metadata, path, meta, `${runDir}/${RUN_FILES.meta("last")}`);
  const params = model.parameters();
  const get = (key: string) => {
    const t = tensors.get(key);
    if (!t) throw new DataError(`missing tensor ${key}`, path);
    return t.data;
  };
  const step = Number(metadata.adam_step);
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new DataError(
      `adam_step ${JSON.stringify(metadata.adam_step)} is not a step count`,
      path,
    );
  }
  optimizer.loadState({
    step,
    m: params.map((q) => get(`m.${q.name}`)),
    v: params.map((q) => get(`v.${q.name}`)),
  });
}

/** The lines of a run's `metrics.jsonl` (none when it is missing). */
export async function readMetrics(runDir: string): Promise<EpochMetrics[]> {
  const path = `${runDir}/${RUN_FILES.metrics}`;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return text.split("\n").filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l) as EpochMetrics;
    } catch {
      throw new DataError("is not one JSON object per line", path, i + 1);
    }
  });
}

/** Rewrites `metrics.jsonl` whole (atomically) from the run's history. */
function writeMetrics(runDir: string, history: readonly EpochMetrics[]): Promise<void> {
  return writeAtomic({
    path: `${runDir}/${RUN_FILES.metrics}`,
    bytes: history.map((m) => JSON.stringify(m) + "\n").join(""),
  });
}

/**
 * What `--resume` may change. A different batch, seed, learning rate or data set (by its
 * CSV's fingerprint) would continue the saved step-in-epoch and optimizer state against
 * another run, so those are refused, each named with both values. More epochs or another
 * time budget are well defined, and each comes with a note of what it does to the schedule.
 */
export function compareResumeSettings(
  saved: Record<string, unknown>,
  now: TrainSettings,
  at?: { globalStep: number; stepsPerEpoch: number },
): { refused: string[]; notes: string[] } {
  const refused: string[] = [];
  const notes: string[] = [];
  for (const [key, flag] of [["batch", "--batch"], ["seed", "--seed"], ["lr", "--lr"]] as const) {
    if (saved[key] !== now[key]) refused.push(`${flag} ${now[key]} (the run has ${saved[key]})`);
  }
  if ((saved.exclude ?? null) !== now.exclude) {
    refused.push(`--exclude ${now.exclude ?? "(none)"} (the run has ${saved.exclude ?? "none"})`);
  }
  if (saved.dataFingerprint !== undefined && saved.dataFingerprint !== now.dataFingerprint) {
    refused.push(
      `--data ${now.data}, whose label CSV differs from the one the run was trained on (${saved.data})`,
    );
  } else if (saved.data !== now.data) {
    notes.push(`the data moved from ${saved.data} to ${now.data} (same label CSV)`);
  }
  if (saved.epochs !== now.epochs) {
    let change = "";
    if (at) {
      const rate = (epochs: number) =>
        learningRate(now.lr, at.globalStep, at.stepsPerEpoch * epochs).toPrecision(3);
      change = `: at step ${at.globalStep} the learning rate goes from ${
        rate(Number(saved.epochs))
      } to ${rate(now.epochs)}`;
    }
    notes.push(
      `--epochs ${now.epochs} (was ${saved.epochs}): the cosine schedule now spans ${now.epochs} ` +
        `epochs from the start${change}`,
    );
  }
  if (saved.kernels !== undefined && saved.kernels !== now.kernels) {
    notes.push(
      `${now.kernels} convolution kernels (the run had ${saved.kernels}): the same arithmetic ` +
        `in another order, so results differ from an uninterrupted run in the last bits`,
    );
  }
  if (saved.timeLimitMinutes !== now.timeLimitMinutes) {
    notes.push(
      `--time-limit ${now.timeLimitMinutes} (was ${saved.timeLimitMinutes}): the budget counts ` +
        `the minutes already trained, and the schedule follows the new one`,
    );
  }
  return { refused, notes };
}

/** Everything {@link trainModel} needs. */
export interface TrainJob {
  /** Engine to run on. */
  engine: Engine;
  /** The whole labeled set; `split` says which rows train and which validate. */
  set: ImageSet;
  /** Train/validation split. */
  split: Split;
  /** Model configuration. */
  config: ModelConfig;
  /** Normalization statistics of the training split. */
  normalization: Normalization;
  /** Run folder (must exist). */
  runDir: string;
  /** Hyper-parameters. */
  settings: TrainSettings;
  /** How `set`'s images were prepared, recorded in every checkpoint. */
  recipe: Recipe;
  /** Continue from `runDir/last`. */
  resume: boolean;
  /** Called with a one-line status (progress bar) now and then. */
  onProgress?: (line: string) => void;
  /** Called after each epoch, with the seconds the rest of the run should take. */
  onEpoch?: (m: EpochMetrics, runSecondsLeft: number) => void;
  /** Called with a line worth telling the user (what a resume changes, files cleaned up). */
  onNote?: (line: string) => void;
  /** Polled after every step; true stops training after saving `last`. */
  shouldStop?: () => boolean;
}

/** How a run ended. */
export interface TrainResult {
  /** Epochs completed. */
  epochs: number;
  /** Best validation MAE in months. */
  bestValMae: number;
  /** Why training stopped: all epochs done, the time budget spent, or Ctrl-C. */
  stopped: "done" | "time-limit" | "interrupted";
  /** Training images per second over the whole run (steps only). */
  imagesPerSecond: number;
}

/** Steps between loss read-backs (and progress updates). */
const LOG_EVERY = 20;

/** Trains `job.config` on `job.set`, validating and checkpointing after every epoch. */
export async function trainModel(job: TrainJob): Promise<TrainResult> {
  const { engine: e, set, split, config, normalization: norm, runDir, settings } = job;
  const model = new BoneAgeNet(e, config, settings.seed);
  const optimizer = new Adam(e, model.parameters(), { lr: settings.lr });
  let startEpoch = 0;
  let skipSteps = 0;
  let globalStep = 0;
  let bestValMae = Infinity;
  let secondsBefore = 0;
  let history: EpochMetrics[] = [];
  const removed = await removeStaleTempFiles(runDir);
  if (removed.length) job.onNote?.(`removed ${removed.length} unfinished files of a crashed save`);
  if (job.resume) {
    const meta = await readCheckpointMeta(runDir, "last");
    if (meta.config.name !== config.name) {
      throw new Error(
        `--resume: ${runDir} holds a "${meta.config.name}" run, not "${config.name}"`,
      );
    }
    const { refused, notes } = compareResumeSettings(meta.settings, settings, {
      globalStep: meta.globalStep,
      stepsPerEpoch: Math.ceil(split.train.length / settings.batch),
    });
    if (JSON.stringify(meta.recipe) !== JSON.stringify(job.recipe)) {
      refused.push(
        `the image recipe ${JSON.stringify(job.recipe)} (the run has ${
          JSON.stringify(meta.recipe)
        })`,
      );
    }
    if (refused.length) {
      throw new Error(
        `--resume: ${runDir} was started with other settings: ${refused.join("; ")}. ` +
          `Resume with the same ones, or start a new run with another --out`,
      );
    }
    notes.forEach((n) => job.onNote?.(`--resume: ${n}`));
    await loadWeightsOf(model, runDir, "last", meta);
    await loadOptimizer(runDir, model, optimizer, meta);
    startEpoch = meta.epoch;
    skipSteps = meta.stepInEpoch;
    globalStep = meta.globalStep;
    bestValMae = meta.bestValMae ?? Infinity;
    secondsBefore = meta.trainSeconds ?? 0;
    // metrics.jsonl says what the checkpoint says, whatever a crash left in it.
    history = (meta.history as EpochMetrics[] | undefined) ??
      (await readMetrics(runDir)).filter((m) => m.epoch <= meta.epoch);
    await writeMetrics(runDir, history);
  }
  const loaderOptions = {
    pixelMean: norm.pixelMean,
    pixelStd: norm.pixelStd,
    ageMean: norm.ageMean,
    ageSD: norm.ageStd,
  };
  const started = performance.now();
  // The time budget covers training, validation and checkpoints; the steps stop `reserve`
  // seconds early to leave time for the last validation (estimated until one is measured).
  const budget = settings.timeLimitMinutes * 60;
  let reserve = budget > 0 ? split.val.length / 20 : 0;
  const trainSeconds = () => secondsBefore + (performance.now() - started) / 1000;
  const timeFraction = () =>
    budget <= 0 ? 0 : budget <= reserve ? 1 : trainSeconds() / (budget - reserve);
  const trainLoader = new Loader(e, set, split.train, {
    ...loaderOptions,
    batchSize: settings.batch,
    seed: settings.seed,
    shuffle: true,
    augment: true,
    // Asked as each batch is augmented, when globalStep is the step about to run.
    side: (): number => sideAt(globalStep),
  });
  const stepsPerEpoch = trainLoader.batchesPerEpoch;
  const totalSteps = stepsPerEpoch * settings.epochs;
  const valTruth = Float32Array.from(split.val, (i) => set.boneage[i]);
  let stepSeconds = 0;
  // Step cost grows with the pixels of the training side (64x64 steps early, 96x96 later),
  // so the run's ETA prices the steps left by their side, at the cost measured so far.
  let pixelSteps = 0;
  let validationSeconds = split.val.length / 20; // replaced once a validation is measured
  const sideAt = (step: number) =>
    trainingSide(config, scheduleProgress(step, totalSteps, timeFraction()));
  /** Seconds left for the steps from `globalStep` on and the validations of epochs `epoch`.. */
  const secondsLeft = (epoch: number, secondsPerPixelStep: number) =>
    runSecondsLeft({
      config,
      fromStep: globalStep,
      totalSteps,
      timeFraction: timeFraction(),
      secondsPerPixelStep,
      validations: settings.epochs - epoch,
      validationSeconds,
      budgetLeft: budget > 0 ? Math.max(0, budget - trainSeconds()) : Infinity,
    });
  let lr = settings.lr;
  let imagesTrained = 0;
  let stopped: TrainResult["stopped"] = "done";
  let completedEpochs = startEpoch;

  const meta = (epoch: number, stepInEpoch: number, valMae: number): CheckpointMeta => ({
    format: 1,
    config,
    normalization: norm,
    epoch,
    stepInEpoch,
    globalStep,
    valMae,
    bestValMae,
    trainSeconds: trainSeconds(),
    settings: { ...settings },
    history: history as unknown as Record<string, unknown>[],
    recipe: job.recipe,
  });

  for (let epoch = startEpoch; epoch < settings.epochs; epoch++) {
    const epochStart = performance.now();
    let lossSum: Tensor | null = null;
    let lossSumSteps = 0;
    let epochLoss = 0;
    let epochLossSteps = 0;
    let step = 0;
    const firstStep = skipSteps;
    let interruptedAt = -1;
    const readLoss = async () => {
      if (!lossSum) return;
      const mean = (await lossSum.read())[0] / lossSumSteps;
      if (!Number.isFinite(mean)) {
        throw new Error(
          `training diverged: the loss is ${mean} at epoch ${epoch + 1}, step ${step}. ` +
            `The last good checkpoint in ${runDir} is intact; try a lower --lr (now ${settings.lr}).`,
        );
      }
      epochLoss += mean * lossSumSteps;
      epochLossSteps += lossSumSteps;
      lossSum.dispose();
      lossSum = null;
      lossSumSteps = 0;
    };
    const stepTimer = performance.now();
    for (const batch of trainLoader.epoch(epoch)) {
      if (step < skipSteps) {
        step++;
        continue;
      }
      lr = learningRate(settings.lr, globalStep, totalSteps, timeFraction());
      pixelSteps += sideAt(globalStep) ** 2;
      const previousSum: Tensor | null = lossSum;
      lossSum = e.tidy(() => {
        const pred = model.forward(batch.images, batch.male, true, globalStep);
        const loss = l1Loss(pred, batch.target);
        const grads = e.gradients(loss, model.parameters());
        optimizer.step(grads, lr);
        return previousSum ? e.add(previousSum, loss) : e.add(loss, e.full([1], 0));
      });
      (previousSum as Tensor | null)?.dispose();
      e.flush();
      lossSumSteps++;
      step++;
      globalStep++;
      imagesTrained += batch.count;
      if (step % LOG_EVERY === 0 || step === stepsPerEpoch) {
        await readLoss();
        const elapsed = (performance.now() - stepTimer) / 1000;
        const done = step - skipSteps;
        const rate = done * settings.batch / elapsed;
        const eta = secondsLeft(epoch, (stepSeconds + elapsed) / pixelSteps);
        job.onProgress?.(
          progressLine(
            epoch + 1,
            settings.epochs,
            step,
            stepsPerEpoch,
            epochLoss / epochLossSteps * norm.ageStd,
            rate,
            eta,
          ),
        );
      }
      const overTime = timeFraction() >= 1;
      if (job.shouldStop?.() || overTime) {
        stopped = overTime ? "time-limit" : "interrupted";
        interruptedAt = step;
        break;
      }
    }
    await readLoss();
    stepSeconds += (performance.now() - stepTimer) / 1000;
    skipSteps = 0;
    const partial = interruptedAt >= 0 && interruptedAt < stepsPerEpoch;
    if (partial && stopped === "interrupted") {
      await saveCheckpoint(runDir, "last", model, meta(epoch, interruptedAt, NaN), optimizer);
      break;
    }
    // A time-limited run validates its last, partial epoch too: its learning rate has annealed.
    const validationStart = performance.now();
    const predicted = await predictMonths(model, set, split.val, norm);
    const valMae = meanAbsoluteError(predicted, valTruth);
    const improved = valMae < bestValMae;
    if (improved) bestValMae = valMae;
    const [doneEpochs, stepInEpoch] = partial ? [epoch, interruptedAt] : [epoch + 1, 0];
    const seconds = (performance.now() - epochStart) / 1000;
    const metrics: EpochMetrics = {
      epoch: epoch + 1,
      train_loss: epochLoss / epochLossSteps,
      train_mae_months: epochLoss / epochLossSteps * norm.ageStd,
      val_mae: valMae,
      lr,
      seconds,
      images_per_s: ((step - firstStep) * settings.batch) / seconds,
      ...(partial ? { partial: true } : {}),
    };
    history.push(metrics);
    await saveCheckpoint(runDir, "last", model, meta(doneEpochs, stepInEpoch, valMae), optimizer);
    if (improved) {
      await saveCheckpoint(runDir, "best", model, meta(doneEpochs, stepInEpoch, valMae));
    }
    // After the checkpoint, so that it never lists an epoch the checkpoint lacks; a crash
    // in between leaves it one line short until --resume rewrites it from `last`.
    await writeMetrics(runDir, history);
    validationSeconds = (performance.now() - validationStart) / 1000;
    reserve = 1.5 * validationSeconds;
    completedEpochs = epoch + 1;
    job.onEpoch?.(
      metrics,
      stopped === "done" ? secondsLeft(epoch + 1, stepSeconds / Math.max(1, pixelSteps)) : 0,
    );
    if (stopped !== "done") break;
  }
  return {
    epochs: completedEpochs,
    bestValMae,
    stopped,
    imagesPerSecond: imagesTrained / Math.max(stepSeconds, 1e-9),
  };
}

/**
 * `epoch 3/10 [#####.....] 120/363  loss 14.2 mo  31.5 img/s  run ends in 47m42s`: the time
 * left is the whole run's (the remaining epochs and their validations, within any time
 * budget), not the epoch's.
 */
export function progressLine(
  epoch: number,
  epochs: number,
  step: number,
  steps: number,
  lossMonths: number,
  imagesPerSecond: number,
  runSecondsLeft: number,
): string {
  const width = 20;
  const filled = Math.round(width * step / steps);
  return `epoch ${epoch}/${epochs} [${"#".repeat(filled)}${".".repeat(width - filled)}] ` +
    `${step}/${steps}  loss ${lossMonths.toFixed(1)} mo  ${
      imagesPerSecond.toFixed(1)
    } img/s  run ends in ${formatDuration(runSecondsLeft)}`;
}

/** `1h02m`, `7m42s`, `12s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) {
    return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  }
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}
