/**
 * How a training run spends its steps and its time: the learning-rate schedule (warm-up, then
 * cosine decay that follows the clock under a time budget), the low-resolution phase, the
 * time the rest of the run should take, and the progress line that shows it.
 *
 * @module
 */
import type { ModelConfig } from "../model/configs.ts";

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
