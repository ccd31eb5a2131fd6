/**
 * The training loop behind `deno task train`.
 *
 * One training step = upload the next batch, record forward + backward + Adam into one
 * command encoder, submit once. The loss is summed on the GPU and read back only every
 * `LOG_EVERY` steps (each read waits for the GPU, which costs more than a step's recording).
 *
 * @module
 */

import {
  type CheckpointMeta,
  loadWeightsOf,
  type Normalization,
  removeStaleTempFiles,
} from "./checkpoint.ts";
import type { ImageSet } from "../data/dataset.ts";
import { Loader } from "../data/loader.ts";
import { type Split } from "../data/split.ts";
import type { Engine } from "../engine/engine.ts";
import type { ModelConfig } from "../model/configs.ts";
import { BoneAgeNet } from "../model/network.ts";
import { l1Loss } from "../ops/loss.ts";
import { Adam } from "../model/optim.ts";
import type { Recipe } from "../data/recipe.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  EpochMetrics,
  loadOptimizer,
  readCheckpointMeta,
  readMetrics,
  saveCheckpoint,
  writeMetrics,
} from "./checkpoint.ts";
import {
  learningRate,
  progressLine,
  runSecondsLeft,
  scheduleProgress,
  trainingSide,
} from "./schedule.ts";
import { meanAbsoluteError, predictMonths } from "./predict.ts";

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
