/**
 * Finding a data folder's label CSVs and images, and reading the labels into rows.
 *
 * Layouts understood without any special-casing of folder names:
 * - Kaggle training: `boneage-training-dataset.csv` (`id,boneage,male`) with images in
 *   `boneage-training-dataset/` or Kaggle's nested `boneage-training-dataset/boneage-training-dataset/`;
 * - Kaggle test: `boneage-test-dataset.csv` (`Case ID,Sex` M/F, no age) with images in
 *   `boneage-test-dataset/`, plus reference labels from `boneage-test-labels.csv` when present;
 * - RSNA validation: a CSV with `Image ID`, `male`, `Bone Age (months)` (e.g.
 *   `Validation Dataset.csv`) with images in `boneage-validation-dataset-1/`, `-2/`.
 *
 * @module
 */
import { parse } from "csv-parse/sync";
import { basename, dirname, extname, join } from "node:path";
import { DataError, emptyReport, type LoadReport, type SkippedRow } from "./report.ts";
import { formatCount } from "../util.ts";

/** One CSV of a data folder and where its images are. */
export interface SplitSource {
  /** `train`, `test`, `validation`, or the CSV's lower-cased stem for anything else. */
  name: string;
  /** The label CSV. */
  csvPath: string;
  /** Separate reference labels (`id,boneage,male`) for a CSV that carries none, if present. */
  labelsPath?: string;
  /** Folders searched for `<id>.png|jpg|jpeg` (and one level below, for Kaggle's nesting). */
  imageDirs: string[];
  /** Whether a row without a valid bone age is an error (false only for test CSVs). */
  requireAge: boolean;
}

/** The CSVs found in a data folder. */
export interface DatasetLayout {
  /** The data folder as given. */
  dir: string;
  /** One entry per label CSV, sorted by name. */
  splits: SplitSource[];
}

/** One usable labelled image. */
export interface LabelRow {
  /** Image id: the file name without extension. */
  id: string;
  /** Path of the image file. */
  imagePath: string;
  /** 1 for male, 0 for female. */
  male: 0 | 1;
  /** Bone age in months; NaN where the CSV carries no label (test split). */
  boneage: number;
  /** 1-based line of the row in the CSV, for messages. */
  line: number;
}

/** Rows of one CSV that passed the label checks, and those that did not. */
export interface LabelTable {
  /** Where the rows came from. */
  source: SplitSource;
  /** Usable rows in CSV order. */
  rows: LabelRow[];
  /** Rows left out so far (`used` is `rows.length`). */
  report: LoadReport;
  /** SHA-256 (hex) of the label CSV: the same data set under another path has the same one. */
  fingerprint: string;
}

/** SHA-256 of `bytes` as lower-case hex. */
async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const IMAGE_EXT = new Set([".png", ".jpg", ".jpeg"]);
const KEYWORDS: [RegExp, string][] = [[/train/i, "train"], [/valid/i, "validation"], [
  /test/i,
  "test",
]];

/** Header names normalized to lower-case letters and digits only. */
const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, "");
const ID_COLS = ["id", "imageid", "caseid", "image"];
const SEX_COLS = ["male", "sex", "gender", "ismale"];

function isAgeColumn(h: string): boolean {
  return h === "boneage" || h.startsWith("boneage") || h.endsWith("boneagemonths");
}

function keywordOf(name: string): string | undefined {
  for (const [re, split] of KEYWORDS) if (re.test(name)) return split;
  return undefined;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Lists the label CSVs of a data folder (or of the folder holding a given CSV file) and
 * where each one's images are. Throws a {@link DataError} when the folder is missing or
 * holds no CSV.
 */
export async function findDataset(dir: string): Promise<DatasetLayout> {
  const info = await statOrNull(dir);
  if (!info) throw new DataError("data folder not found", dir);
  if (info.isFile && extname(dir).toLowerCase() === ".csv") {
    const layout = await findDataset(dirname(dir));
    const splits = layout.splits.filter((s) => s.csvPath === join(dirname(dir), basename(dir)));
    return { dir: dirname(dir), splits };
  }
  if (!info.isDirectory) throw new DataError("not a folder", dir);

  const csvs: string[] = [];
  const subdirs: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".")) continue;
    if (e.isFile && extname(e.name).toLowerCase() === ".csv") csvs.push(e.name);
    else if (e.isDirectory) subdirs.push(e.name);
  }
  csvs.sort();
  subdirs.sort();
  if (csvs.length === 0) {
    throw new DataError(
      "no label CSV found (expected e.g. boneage-training-dataset.csv with id,boneage,male)",
      dir,
    );
  }

  const isLabels = (f: string) => /[-_ ]labels?\.csv$/i.test(f);
  const splits: SplitSource[] = [];
  for (const csv of csvs.filter((f) => !isLabels(f))) {
    const stem = csv.slice(0, -4);
    const keyword = keywordOf(stem);
    let name = keyword ?? stem.toLowerCase();
    for (let k = 2; splits.some((s) => s.name === name); k++) name = `${stem.toLowerCase()}-${k}`;
    const dirs = subdirs.filter((d) =>
      keyword ? keywordOf(d) === keyword : d.toLowerCase() === stem.toLowerCase()
    );
    const labels = csvs.find((f) =>
      isLabels(f) && keyword !== undefined && keywordOf(f) === keyword
    );
    splits.push({
      name,
      csvPath: join(dir, csv),
      labelsPath: labels === undefined ? undefined : join(dir, labels),
      // No matching folder: images lie next to the CSV (flat layout).
      imageDirs: dirs.length > 0 ? dirs.map((d) => join(dir, d)) : [dir],
      requireAge: name !== "test",
    });
  }
  if (splits.length === 0) throw new DataError("only reference-label CSVs found", dir);
  splits.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { dir, splits };
}

/**
 * Picks one split of a layout: the named one, else `train`, else the only one.
 * Throws a {@link DataError} listing the available splits otherwise.
 */
export function pickSplit(layout: DatasetLayout, name?: string): SplitSource {
  const names = layout.splits.map((s) => s.name).join(", ");
  if (name !== undefined) {
    const s = layout.splits.find((s) => s.name === name);
    if (!s) throw new DataError(`no "${name}" split (found: ${names})`, layout.dir);
    return s;
  }
  const train = layout.splits.find((s) => s.name === "train");
  if (train) return train;
  if (layout.splits.length === 1) return layout.splits[0];
  throw new DataError(`several splits and none named train; pick one of: ${names}`, layout.dir);
}

/** Maps image id to file path over the given folders and, for nesting, one level below. */
async function indexImages(dirs: readonly string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const visit = async (d: string, depth: number) => {
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(d)) entries.push(e);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    // PNG before JPEG so a folder holding both of one id reads the lossless one.
    entries.sort((a, b) =>
      (extname(a.name).toLowerCase() === ".png" ? 0 : 1) -
        (extname(b.name).toLowerCase() === ".png" ? 0 : 1) || (a.name < b.name ? -1 : 1)
    );
    const nested: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const ext = extname(e.name).toLowerCase();
      if (!e.isDirectory && IMAGE_EXT.has(ext)) {
        const id = e.name.slice(0, -ext.length);
        if (!found.has(id)) found.set(id, join(d, e.name));
      } else if (e.isDirectory && depth === 0) nested.push(join(d, e.name));
    }
    for (const n of nested) await visit(n, depth + 1);
  };
  for (const d of dirs) await visit(d, 0);
  return found;
}

/** Parses `True/False`, `1/0`, `M/F`, `male/female`; undefined for anything else. */
export function parseSex(value: string): 0 | 1 | undefined {
  const v = value.trim().toLowerCase();
  if (["true", "t", "1", "m", "male", "yes", "y"].includes(v)) return 1;
  if (["false", "f", "0", "female", "no", "n"].includes(v)) return 0;
  return undefined;
}

/** A parsed CSV: its header and records with their 1-based line numbers. */
export interface Csv {
  /** SHA-256 of the file's bytes, hex: what identifies the data set, wherever it lies. */
  fingerprint: string;
  header: string[];
  records: { fields: string[]; line: number }[];
}

/** Reads and parses a CSV, throwing a {@link DataError} naming the file (and line). */
export async function readCsv(path: string): Promise<Csv> {
  let text: string;
  let fingerprint: string;
  try {
    const bytes = await Deno.readFile(path);
    text = new TextDecoder().decode(bytes);
    fingerprint = await sha256Hex(bytes);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new DataError("label CSV not found", path);
    throw new DataError(`cannot read label CSV: ${(e as Error).message}`, path);
  }
  let parsed: { record: string[]; info: { lines: number } }[];
  try {
    parsed = parse(text, {
      info: true,
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
    }) as { record: string[]; info: { lines: number } }[];
  } catch (e) {
    const line = (e as { lines?: number }).lines;
    throw new DataError(`malformed CSV: ${(e as Error).message}`, path, line);
  }
  if (parsed.length === 0) throw new DataError("empty CSV (no header line)", path);
  return {
    fingerprint,
    header: parsed[0].record,
    records: parsed.slice(1).map((p) => ({ fields: p.record, line: p.info.lines })),
  };
}

/**
 * The ids of a CSV's id column (`id`, `Image ID`, `Case ID`; `.png` stripped): the rows that
 * `train --exclude` keeps out of training and validation.
 */
export async function readIdList(path: string): Promise<Set<string>> {
  const csv = await readCsv(path);
  const col = csv.header.map(norm).findIndex((x) => ID_COLS.includes(x));
  if (col < 0) {
    throw new DataError(
      `no id column (id, Image ID or Case ID) in "${csv.header.join(",")}"`,
      path,
      1,
    );
  }
  const ids = new Set<string>();
  for (const { fields, line } of csv.records) {
    const id = cleanId(fields[col] ?? "");
    if (id === "") throw new DataError("empty id", path, line);
    ids.add(id);
  }
  return ids;
}

interface Columns {
  id: number;
  sex: number;
  age: number;
}

function findColumns(csv: Csv, path: string, requireAge: boolean): Columns {
  const h = csv.header.map(norm);
  const id = h.findIndex((x) => ID_COLS.includes(x));
  const sex = h.findIndex((x) => SEX_COLS.includes(x));
  // An exact `boneage` column wins over one that merely starts so (`boneage_sd`).
  const exactAge = h.indexOf("boneage");
  const age = exactAge >= 0 ? exactAge : h.findIndex(isAgeColumn);
  const missing: string[] = [];
  if (id < 0) missing.push("id (id, Image ID or Case ID)");
  if (sex < 0) missing.push("sex (male or Sex)");
  if (age < 0 && requireAge) missing.push("bone age (boneage or Bone Age (months))");
  if (missing.length > 0) {
    throw new DataError(
      `missing column ${missing.join(", ")}; header is "${csv.header.join(",")}"`,
      path,
      1,
    );
  }
  return { id, sex, age };
}

/** An id as written in a CSV, minus any image extension (`1377.png` -> `1377`). */
function cleanId(raw: string): string {
  const ext = extname(raw).toLowerCase();
  return IMAGE_EXT.has(ext) ? raw.slice(0, -ext.length) : raw;
}

/** Bone ages a CSV may give, in months (RSNA's run from 1 to 228). */
export const AGE_RANGE_MONTHS: readonly [number, number] = [0, 300];

/**
 * Parses a bone age cell: a plain decimal number (`132`, `132.5`; not `0x84`, `1e2` or
 * `Infinity`) within {@link AGE_RANGE_MONTHS}, else undefined. Empty gives NaN.
 */
function parseAge(cell: string | undefined): number | undefined {
  if (cell === undefined || cell === "") return NaN;
  if (!/^\d+(\.\d+)?$/.test(cell)) return undefined;
  const v = Number(cell);
  return v >= AGE_RANGE_MONTHS[0] && v <= AGE_RANGE_MONTHS[1] ? v : undefined;
}

/**
 * Reads one split's CSV into rows, checking every row: an id, no duplicate, a numeric
 * non-negative age (where the split needs one), a known sex value and an existing image.
 * Rows failing a check are left out and listed in the report with line and reason; a missing
 * CSV or column throws a {@link DataError}.
 */
export async function readLabels(source: SplitSource): Promise<LabelTable> {
  const path = source.csvPath;
  const csv = await readCsv(path);
  const cols = findColumns(csv, path, source.requireAge);
  const images = await indexImages(source.imageDirs);
  const report = emptyReport();
  const rows: LabelRow[] = [];
  const seen = new Map<string, number>();
  const skip = (s: Omit<SkippedRow, "file">) => report.skipped.push({ file: path, ...s });

  for (const { fields, line } of csv.records) {
    const id = cleanId(fields[cols.id] ?? "");
    if (id === "") {
      skip({ id, line, reason: "missing id", detail: "empty id field" });
      continue;
    }
    const first = seen.get(id);
    if (first !== undefined) {
      skip({ id, line, reason: "duplicate id", detail: `id already on line ${first}` });
      continue;
    }
    seen.set(id, line);
    const ageCell = cols.age < 0 ? undefined : fields[cols.age];
    const age = parseAge(ageCell);
    if (age === undefined || (source.requireAge && Number.isNaN(age))) {
      const detail = ageCell === undefined || ageCell === "" ? "no bone age" : `"${ageCell}"`;
      skip({
        id,
        line,
        reason: "bad age",
        detail: `bone age ${detail} is not a decimal number of months from ${
          AGE_RANGE_MONTHS[0]
        } to ${AGE_RANGE_MONTHS[1]}`,
      });
      continue;
    }
    const sexCell = fields[cols.sex] ?? "";
    const male = parseSex(sexCell);
    if (male === undefined) {
      skip({ id, line, reason: "bad sex", detail: `unknown sex value "${sexCell}"` });
      continue;
    }
    const imagePath = images.get(id);
    if (imagePath === undefined) {
      const where = source.imageDirs.join(" or ");
      skip({ id, line, reason: "missing image", detail: `no ${id}.png/.jpg in ${where}` });
      continue;
    }
    rows.push({ id, imagePath, male, boneage: age, line });
  }
  if (source.labelsPath !== undefined) await mergeReferenceLabels(source.labelsPath, rows, report);
  report.used = rows.length;
  return { source, rows, report, fingerprint: csv.fingerprint };
}

/** Fills missing ages from a reference-label CSV; disagreements and gaps become warnings. */
async function mergeReferenceLabels(
  path: string,
  rows: LabelRow[],
  report: LoadReport,
): Promise<void> {
  const csv = await readCsv(path);
  const cols = findColumns(csv, path, true);
  const ref = new Map<string, { age: number; male: 0 | 1 | undefined; line: number }>();
  for (const { fields, line } of csv.records) {
    const id = cleanId(fields[cols.id] ?? "");
    const age = parseAge(fields[cols.age]);
    if (id === "" || age === undefined || Number.isNaN(age)) {
      report.warnings.push(`${path}:${line}: reference label ignored (bad id or age)`);
      continue;
    }
    ref.set(id, { age, male: parseSex(fields[cols.sex] ?? ""), line });
  }
  let unlabelled = 0;
  for (const row of rows) {
    const r = ref.get(row.id);
    if (!r) {
      if (Number.isNaN(row.boneage)) unlabelled++;
      continue;
    }
    if (Number.isNaN(row.boneage)) row.boneage = r.age;
    if (r.male !== undefined && r.male !== row.male) {
      report.warnings.push(
        `${path}:${r.line}: id ${row.id} sex disagrees with the image CSV (line ${row.line}); kept the image CSV's`,
      );
    }
  }
  if (unlabelled > 0) {
    report.warnings.push(`${path}: ${formatCount(unlabelled)} ids have no reference label`);
  }
}
