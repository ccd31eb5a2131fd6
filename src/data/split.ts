/**
 * Deterministic train/validation split, stratified by sex and age band, saved as JSON in a
 * run folder so evaluation and resumed runs see exactly the same images.
 *
 * @module
 */
import { join } from "node:path";
import type { ImageSet } from "./dataset.ts";
import type { LabelRow } from "./layout.ts";
import { DataError } from "./report.ts";
import { fnv1a } from "../util.ts";

/** Default share of each stratum held out for validation. */
export const DEFAULT_VAL_FRACTION = 0.15;

/** Age band edges in months: 0-2, 2-6, 6-10, 10-14, 14-19 years (last band open-ended). */
export const AGE_BANDS_MONTHS = [0, 24, 72, 120, 168] as const;

/** What a split can be computed from: an image set, or label rows. */
export type SplitInput = Pick<ImageSet, "ids" | "male" | "boneage"> | readonly LabelRow[];

/** Options of {@link splitDataset}. */
export interface SplitOptions {
  /** Fraction of every stratum that goes to validation (default 0.15). */
  valFraction?: number;
  /** Seed; the same seed and ids give the same split (default 0). */
  seed?: number;
}

/** A train/validation split as indices into the input and as ids. */
export interface Split {
  /** Seed used. */
  seed: number;
  /** Validation fraction asked for. */
  valFraction: number;
  /** Training indices, ascending. */
  train: number[];
  /** Validation indices, ascending. */
  val: number[];
  /** Ids of `train`, same order. */
  trainIds: string[];
  /** Ids of `val`, same order. */
  valIds: string[];
  /** Per stratum (`M:10-14y`, `F:0-2y`, `F:unlabelled`, ...): its size and how many went to validation. */
  strata: Record<string, { total: number; val: number }>;
  /** Ids of a saved split absent from the ids it was resolved against ({@link readSplit}). */
  missing?: string[];
}

/** The stratum name of one image: sex and age band. */
export function stratumOf(male: number, boneageMonths: number): string {
  const sex = male ? "M" : "F";
  if (!Number.isFinite(boneageMonths)) return `${sex}:unlabelled`;
  let b = 0;
  while (b + 1 < AGE_BANDS_MONTHS.length && boneageMonths >= AGE_BANDS_MONTHS[b + 1]) b++;
  const lo = AGE_BANDS_MONTHS[b] / 12;
  const hi = b + 1 < AGE_BANDS_MONTHS.length ? `${AGE_BANDS_MONTHS[b + 1] / 12}` : "19";
  return `${sex}:${lo}-${hi}y`;
}

function columns(
  input: SplitInput,
): { ids: readonly string[]; male: ArrayLike<number>; age: ArrayLike<number> } {
  if (Array.isArray(input)) {
    const rows = input as readonly LabelRow[];
    return {
      ids: rows.map((r) => r.id),
      male: rows.map((r) => r.male),
      age: rows.map((r) => r.boneage),
    };
  }
  const set = input as Pick<ImageSet, "ids" | "male" | "boneage">;
  return { ids: set.ids, male: set.male, age: set.boneage };
}

/**
 * Splits into train and validation, stratified by sex and age band. Within a stratum the
 * images are ordered by a hash of `(seed, id)`, so the split depends on the seed and the ids
 * only (not on row order), and adding images leaves existing assignments mostly unchanged.
 * Validation counts per stratum are rounded so they add up to `round(n * valFraction)`.
 */
export function splitDataset(input: SplitInput, options: SplitOptions = {}): Split {
  const valFraction = options.valFraction ?? DEFAULT_VAL_FRACTION;
  const seed = options.seed ?? 0;
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new RangeError(`valFraction must be in [0, 1), got ${valFraction}`);
  }
  const { ids, male, age } = columns(input);
  const groups = new Map<string, number[]>();
  for (let i = 0; i < ids.length; i++) {
    const key = stratumOf(male[i], age[i]);
    let g = groups.get(key);
    if (!g) groups.set(key, g = []);
    g.push(i);
  }
  const keys = [...groups.keys()].sort();
  // Largest remainder: per-stratum rounding alone can drift from the asked-for total.
  const quota = new Map(keys.map((k) => [k, Math.floor(groups.get(k)!.length * valFraction)]));
  let left = Math.round(ids.length * valFraction) - [...quota.values()].reduce((a, b) => a + b, 0);
  const byRemainder = [...keys].sort((a, b) => {
    const ra = groups.get(a)!.length * valFraction - quota.get(a)!;
    const rb = groups.get(b)!.length * valFraction - quota.get(b)!;
    return rb - ra || (a < b ? -1 : 1);
  });
  for (const k of byRemainder) {
    if (left <= 0) break;
    quota.set(k, quota.get(k)! + 1);
    left--;
  }

  const isVal = new Uint8Array(ids.length);
  const strata: Split["strata"] = {};
  for (const k of keys) {
    const members = groups.get(k)!;
    const order = members.map((i) => ({ i, h: fnv1a(`${seed}:${ids[i]}`) }))
      .sort((a, b) => a.h - b.h || (ids[a.i] < ids[b.i] ? -1 : ids[a.i] > ids[b.i] ? 1 : 0));
    const q = quota.get(k)!;
    for (let r = 0; r < q; r++) isVal[order[r].i] = 1;
    strata[k] = { total: members.length, val: q };
  }
  const train: number[] = [], val: number[] = [];
  for (let i = 0; i < ids.length; i++) (isVal[i] ? val : train).push(i);
  return {
    seed,
    valFraction,
    train,
    val,
    trainIds: train.map((i) => ids[i]),
    valIds: val.map((i) => ids[i]),
    strata,
  };
}

/** File name of a saved split inside a run folder. */
export const SPLIT_FILE = "split.json";

/** Saves a split as `<runDir>/split.json` (creating the folder). Returns the file path. */
export async function writeSplit(runDir: string, split: Split): Promise<string> {
  await Deno.mkdir(runDir, { recursive: true });
  const path = join(runDir, SPLIT_FILE);
  const { missing: _missing, ...saved } = split;
  await Deno.writeTextFile(path, JSON.stringify({ version: 1, ...saved }) + "\n");
  return path;
}

/**
 * Reads `<runDir>/split.json`. Given the `ids` of the set it will index (e.g. `set.ids`), the
 * indices are recomputed from the saved ids, and saved ids not found are listed in `missing`
 * (an image that became unreadable since); without `ids` the saved indices are returned.
 */
export async function readSplit(runDir: string, ids?: readonly string[]): Promise<Split> {
  const path = join(runDir, SPLIT_FILE);
  let saved: Split & { version?: number };
  try {
    saved = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new DataError(`cannot read split: ${(e as Error).message}`, path);
  }
  if (saved.version !== 1 || !Array.isArray(saved.trainIds) || !Array.isArray(saved.valIds)) {
    throw new DataError("not a split file (version 1 with trainIds and valIds expected)", path);
  }
  const { version: _v, ...split } = saved;
  if (ids === undefined) return split;
  const where = new Map(ids.map((id, i) => [id, i]));
  const missing: string[] = [];
  const resolve = (list: string[]) => {
    const out: number[] = [];
    for (const id of list) {
      const i = where.get(id);
      if (i === undefined) missing.push(id);
      else out.push(i);
    }
    return out.sort((a, b) => a - b);
  };
  const train = resolve(split.trainIds), val = resolve(split.valIds);
  return {
    ...split,
    train,
    val,
    trainIds: train.map((i) => ids[i]),
    valIds: val.map((i) => ids[i]),
    missing,
  };
}
