/**
 * Checkpoints: weights in safetensors with PyTorch's layouts (conv `[out, in, kh, kw]`,
 * linear `[out, in]`), plus a JSON file with everything else needed to continue or to
 * predict: config, normalization statistics, epoch, validation MAE and optimizer state.
 * Writes go to a temporary file first and are renamed into place, so a crash or Ctrl-C
 * never leaves a half-written checkpoint. A run folder holds `last` and `best` checkpoints, the
 * optimizer's state and `metrics.jsonl` ({@link RUN_FILES}); this module reads and writes all
 * of them.
 *
 * @module
 */

import { DataError } from "../data/report.ts";
import type { Engine } from "../engine/engine.ts";
import { CONFIGS, headLayer, type ModelConfig } from "../model/configs.ts";
import { BoneAgeNet } from "../model/network.ts";
import type { Adam } from "../model/optim.ts";
import { parseRecipe, type Recipe } from "../data/recipe.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";

/** Intensity and target statistics of the training split, stored with the model. */
export interface Normalization {
  /** Mean of training pixels scaled to [0, 1]. */
  pixelMean: number;
  /** Standard deviation of training pixels scaled to [0, 1]. */
  pixelStd: number;
  /** Mean bone age of the training split, months. */
  ageMean: number;
  /** Standard deviation of the training split's bone age, months. */
  ageStd: number;
}

/** The JSON half of a checkpoint. */
export interface CheckpointMeta {
  /** Format version of this JSON. */
  format: 1;
  /** The model configuration (stored whole, so a renamed config still loads). */
  config: ModelConfig;
  /** Normalization statistics of the training split. */
  normalization: Normalization;
  /** Completed epochs. */
  epoch: number;
  /** Steps done inside `epoch` (non-zero only when a run was interrupted mid-epoch). */
  stepInEpoch: number;
  /** Optimizer steps so far. */
  globalStep: number;
  /** Validation MAE in months after `epoch` (NaN before the first validation). */
  valMae: number;
  /** Best validation MAE so far in this run. */
  bestValMae: number;
  /** Seconds of training (steps, validation, checkpoints) so far, over all resumed parts. */
  trainSeconds?: number;
  /** The command-line settings of the run (seed, lr, batch, epochs ...). */
  settings: Record<string, unknown>;
  /** One entry per validated epoch so far: what `metrics.jsonl` is rewritten from. */
  history?: Record<string, unknown>[];
  /** How the inputs were prepared (`src/data/recipe.ts`); checkpoints without one are legacy. */
  recipe: Recipe;
}

/** The largest checkpoint JSON read; a real one is a few kilobytes. */
const MAX_META_BYTES = 1 << 20;

/**
 * Parses and checks a checkpoint's JSON before anything is built from it: a known
 * configuration (equal to the one of that name here), finite normalization statistics with
 * positive standard deviations, whole non-negative counters, and for `best` a finite
 * validation MAE (it is shown as the estimate's uncertainty). Throws a {@link DataError}
 * naming the file and the key.
 */
export function parseCheckpointMeta(text: string, path: string, tag: string): CheckpointMeta {
  const bad = (key: string, what: string): never => {
    throw new DataError(`${key} ${what}`, path);
  };
  if (text.length > MAX_META_BYTES) bad("the file", `is over ${MAX_META_BYTES} bytes`);
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(text);
  } catch (err) {
    return bad("the file", `is not JSON: ${(err as Error).message}`);
  }
  if (typeof meta !== "object" || meta === null || Array.isArray(meta)) {
    bad("the file", "is not a JSON object");
  }
  if (meta.format !== 1) bad("format", `is ${JSON.stringify(meta.format)}, want 1`);
  const config = meta.config as ModelConfig | undefined;
  const name = typeof config?.name === "string" ? config.name : "";
  const known = Object.hasOwn(CONFIGS, name) ? CONFIGS[name] : undefined;
  if (!known) {
    bad("config.name", `${JSON.stringify(name)} is not one of ${Object.keys(CONFIGS).join(", ")}`);
  }
  if (JSON.stringify(config) !== JSON.stringify(known)) {
    bad(
      "config",
      `differs from the "${name}" configuration of this version; retrain with deno task train --config ${name}`,
    );
  }
  const norm = meta.normalization as Record<string, unknown> | undefined;
  for (const key of ["pixelMean", "pixelStd", "ageMean", "ageStd"]) {
    const v = norm?.[key];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      bad(`normalization.${key}`, `is ${JSON.stringify(v)}, not a finite number`);
    }
    if (key.endsWith("Std") && !((v as number) > 0)) {
      bad(`normalization.${key}`, `is ${v}: a standard deviation must be > 0`);
    }
  }
  for (const key of ["epoch", "stepInEpoch", "globalStep"]) {
    const v = meta[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      bad(key, `is ${JSON.stringify(v)}, not a whole number >= 0`);
    }
  }
  // JSON has no NaN or Infinity: they are written as null (no validation yet, no best yet).
  for (const key of ["valMae", "bestValMae"]) {
    if (meta[key] === null) meta[key] = key === "valMae" ? NaN : Infinity;
    if (typeof meta[key] !== "number" || (meta[key] as number) < 0) {
      bad(key, `is ${JSON.stringify(meta[key])}, not a number >= 0`);
    }
  }
  if (tag === "best" && !Number.isFinite(meta.valMae)) {
    bad("valMae", "is missing: a best checkpoint records its validation MAE");
  }
  if (typeof meta.settings !== "object" || meta.settings === null) bad("settings", "is missing");
  if (meta.history !== undefined && !Array.isArray(meta.history)) bad("history", "is not a list");
  meta.recipe = parseRecipe(meta.recipe, path);
  return meta as unknown as CheckpointMeta;
}

/** Converts one of our tensors to PyTorch's layout for the same parameter. */
function toTorchLayout(name: string, shape: readonly number[], data: Float32Array): NamedArray {
  if (shape.length === 4) {
    // ours [KH, KW, Cin, Cout] -> torch [Cout, Cin, KH, KW]
    const [kh, kw, cin, cout] = shape;
    const out = new Float32Array(data.length);
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        for (let i = 0; i < cin; i++) {
          for (let o = 0; o < cout; o++) {
            out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o];
          }
        }
      }
    }
    return { shape: [cout, cin, kh, kw], data: out };
  }
  if (shape.length === 2 && name.endsWith(".weight")) {
    const [inF, outF] = shape; // ours [In, Out] -> torch [Out, In]
    const out = new Float32Array(data.length);
    for (let i = 0; i < inF; i++) {
      for (let o = 0; o < outF; o++) out[o * inF + i] = data[i * outF + o];
    }
    return { shape: [outF, inF], data: out };
  }
  return { shape: [...shape], data };
}

/** The inverse of {@link toTorchLayout}, given our shape. */
function fromTorchLayout(shape: readonly number[], a: NamedArray): Float32Array {
  if (shape.length === 4) {
    const [kh, kw, cin, cout] = shape;
    const out = new Float32Array(a.data.length);
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        for (let i = 0; i < cin; i++) {
          for (let o = 0; o < cout; o++) {
            out[((y * kw + x) * cin + i) * cout + o] = a.data[((o * cin + i) * kh + y) * kw + x];
          }
        }
      }
    }
    return out;
  }
  if (shape.length === 2 && a.shape.length === 2) {
    const [inF, outF] = shape;
    const out = new Float32Array(a.data.length);
    for (let i = 0; i < inF; i++) {
      for (let o = 0; o < outF; o++) out[i * outF + o] = a.data[o * inF + i];
    }
    return out;
  }
  return a.data;
}

/** The PyTorch-layout shape of one of our tensors (for mismatch messages). */
function torchShape(shape: readonly number[]): number[] {
  if (shape.length === 4) return [shape[3], shape[2], shape[0], shape[1]];
  if (shape.length === 2) return [shape[1], shape[0]];
  return [...shape];
}

/** Temporary files of {@link writeAtomic}: `<name>.tmp-<pid>`. */
export const TEMP_FILE = /\.tmp-\d+$/;

/**
 * Writes each file to a temporary name in its folder, flushed to disk (fsync), then renames
 * them into place in the order given: a crash leaves every file either old or new and
 * complete, never half-written.
 */
export async function writeAtomic(
  ...files: { path: string; bytes: Uint8Array | string }[]
): Promise<void> {
  const encoder = new TextEncoder();
  for (const { path, bytes } of files) {
    const file = await Deno.open(`${path}.tmp-${Deno.pid}`, {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
      for (let at = 0; at < data.length;) at += await file.write(data.subarray(at));
      await file.sync();
    } finally {
      file.close();
    }
  }
  for (const { path } of files) await Deno.rename(`${path}.tmp-${Deno.pid}`, path);
}

/** Removes the temporary files a crashed save left in `dir` (see {@link TEMP_FILE}). */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && TEMP_FILE.test(e.name)) {
      await Deno.remove(`${dir}/${e.name}`);
      removed.push(e.name);
    }
  }
  return removed;
}

/** Serializes the model's tensors (and extra arrays, e.g. optimizer state) to safetensors. */
export async function modelToSafetensors(
  model: BoneAgeNet,
  metadata: Record<string, string>,
): Promise<Uint8Array> {
  const tensors = new Map<string, NamedArray>();
  for (const { name, tensor } of model.namedTensors()) {
    tensors.set(name, toTorchLayout(name, tensor.shape, await tensor.read()));
  }
  return encodeSafetensors(tensors, metadata);
}

/**
 * Loads safetensors weights into `model` and returns the file's metadata. Throws, naming the
 * file, when a tensor is missing, extra, or has another shape (a checkpoint of a different
 * configuration).
 */
export function loadModelWeights(
  model: BoneAgeNet,
  bytes: Uint8Array,
  source: string,
): Record<string, string> {
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  renameLegacyHead(model.config, tensors);
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const { name, tensor } of model.namedTensors()) {
    expected.add(name);
    const found = tensors.get(name);
    const want = torchShape(tensor.shape);
    if (!found) problems.push(`missing ${name} [${want}]`);
    else if (found.shape.join() !== want.join()) {
      problems.push(
        `${name} is [${found.shape}] in the file but [${want}] in the ${model.config.name} model`,
      );
    }
  }
  for (const name of tensors.keys()) if (!expected.has(name)) problems.push(`unexpected ${name}`);
  if (problems.length) {
    throw new Error(
      `${source} does not match the "${model.config.name}" model: ${
        problems.slice(0, 5).join("; ")
      }` +
        (problems.length > 5 ? `; and ${problems.length - 5} more` : ""),
    );
  }
  for (const { name, tensor } of model.namedTensors()) {
    model.engine.write(tensor, fromTorchLayout(tensor.shape, tensors.get(name)!));
  }
  return metadata;
}

/**
 * Checkpoints saved before the head's layers were named by their `nn.Sequential` index
 * ({@link headLayer}) numbered them 0, 1, 2 ...; such a file is renamed in place so it keeps
 * loading. Only a file whose head names are exactly the old ones is renamed.
 */
function renameLegacyHead(config: ModelConfig, tensors: Map<string, NamedArray>): void {
  const renames: [string, string][] = [];
  for (let i = 0; i <= config.dense.length; i++) {
    for (const suffix of [".weight", ".bias"]) {
      renames.push([`head.${i}${suffix}`, `${headLayer(config, i)}${suffix}`]);
    }
  }
  const inFile = [...tensors.keys()].filter((n) => n.startsWith("head.")).sort().join();
  const sorted = (k: 0 | 1) => renames.map((r) => r[k]).sort().join();
  if (inFile !== sorted(0) || inFile === sorted(1)) return;
  const arrays = renames.map(([old]) => tensors.get(old)!);
  for (const [old] of renames) tensors.delete(old);
  renames.forEach(([, now], k) => tensors.set(now, arrays[k]));
}

/**
 * Throws unless a checkpoint file's `step` stamp is the step its JSON records: the files of
 * one checkpoint are one generation, never the weights of one save beside the JSON of another.
 */
export function checkSameGeneration(
  metadata: Record<string, string>,
  file: string,
  meta: CheckpointMeta,
  metaPath: string,
): void {
  if (metadata.step !== String(meta.globalStep)) {
    throw new DataError(
      `holds step ${metadata.step ?? "(none)"} but ${metaPath} records step ${meta.globalStep}: ` +
        `the files are of different saves (an interrupted save or a copied file); ` +
        `use the other checkpoint of the run or train again`,
      file,
    );
  }
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
export async function loadWeightsOf(
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
export function writeMetrics(runDir: string, history: readonly EpochMetrics[]): Promise<void> {
  return writeAtomic({
    path: `${runDir}/${RUN_FILES.metrics}`,
    bytes: history.map((m) => JSON.stringify(m) + "\n").join(""),
  });
}
