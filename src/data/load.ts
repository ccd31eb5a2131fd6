/**
 * `loadImageSet`: labels + images of one split, preprocessed once into a binary cache and
 * loaded from it afterwards.
 *
 * The cache holds, per split and preprocessing parameters, one pixel blob (`size*size`
 * bytes per image) and a JSON index keyed by the image's path relative to the data folder,
 * with its file size and mtime. A changed file is re-decoded alone; other parameters
 * (size, pad, preprocessing version) use their own cache files. Failures are cached too, so
 * a warm load reports the same corrupt files without decoding them again.
 *
 * @module
 */
import { basename, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { ImageSet } from "./dataset.ts";
import {
  type DecodeOutcome,
  type DecodeRequest,
  type DecodeResponse,
  runDecodeRequest,
} from "./decode_job.ts";
import { type Fit, PREPROCESS_VERSION } from "./image.ts";
import { findDataset, type LabelRow, pickSplit, readLabels } from "./layout.ts";
import { createProgress, type Progress } from "./progress.ts";
import {
  DataError,
  formatReport,
  formatSkips,
  type LoadReport,
  type SkippedRow,
  type SkipReason,
} from "./report.ts";
import { hashKey } from "../util.ts";

export type { ImageSet } from "./dataset.ts";

/** Options of {@link loadImageSet}. */
export interface LoadOptions {
  /** Square side of the model input, in pixels. */
  size: number;
  /** Split to load (`train`, `test`, `validation`, ...); default `train`, else the only one. */
  split?: string;
  /** Turn every skipped row into an error (default false: skip, count and report). */
  strict?: boolean;
  /**
   * Cache folder. Default `<dataDir>/.cache/`, or `data/.cache/<name>-<hash>/` in this project
   * when the data folder is read-only. `false` disables caching.
   */
  cacheDir?: string | false;
  /** Decoding workers; default the number of cores (at most 8). 0 decodes in this thread. */
  workers?: number;
  /** Use only the first `limit` usable rows (quick runs, tests). */
  limit?: number;
  /** Letterbox fill value (0..255), default 0. */
  pad?: number;
  /** How each radiograph becomes a square (default `letterbox`; see `Fit`). */
  fit?: Fit;
  /** Progress bar on stderr while decoding (default true; final line only when not a TTY). */
  progress?: boolean;
  /** Do not print the summary line, skipped rows and warnings to stderr. */
  quiet?: boolean;
}

/** What {@link loadImageSet} returns. */
export interface LoadResult {
  /** The images and labels, in CSV order. */
  set: ImageSet;
  /** The rows behind `set`, index for index (paths, CSV lines). */
  rows: LabelRow[];
  /** Rows used and skipped, with reasons; see `formatReport`. */
  report: LoadReport;
  /** Cache folder used (null when disabled or unavailable), and what it served. */
  cache: { dir: string | null; hits: number; decoded: number };
  /** SHA-256 (hex) of the split's label CSV, recorded in checkpoints (see `readLabels`). */
  fingerprint: string;
}

const INDEX_VERSION = 1;

/** Per image: [file size, mtime ms, slot] or, for a failed decode, [size, mtime, -1, reason, error]. */
type CacheEntry = [number, number, number] | [number, number, -1, SkipReason, string];

interface CacheIndex {
  version: number;
  params: { size: number; pad: number; preprocess: number; fit?: Fit };
  csv: string;
  blob: string;
  entries: Record<string, CacheEntry>;
}

/** Where the project keeps caches for read-only data folders: `<project>/data/.cache/`. */
function projectCacheRoot(): string {
  const url = new URL("../../data/.cache/", import.meta.url);
  return url.protocol === "file:" ? fileURLToPath(url) : join(Deno.cwd(), "data", ".cache");
}

async function writable(dir: string): Promise<boolean> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const probe = join(dir, `.probe-${Deno.pid}-${Math.random().toString(36).slice(2)}`);
    await Deno.writeFile(probe, new Uint8Array());
    await Deno.remove(probe);
    return true;
  } catch {
    return false;
  }
}

/** Picks the cache folder: given, `<dataDir>/.cache`, or the project fallback; null if none works. */
async function resolveCacheDir(dataDir: string, option: string | false | undefined) {
  if (option === false) return null;
  if (option !== undefined) {
    if (!(await writable(option))) throw new DataError("cache folder is not writable", option);
    return option;
  }
  const inData = join(dataDir, ".cache");
  // Honour a folder marked read-only even when running as root, who could write anyway.
  const mode = (await Deno.stat(dataDir)).mode;
  const readOnly = mode !== null && (mode & 0o222) === 0;
  if (!readOnly && (await writable(inData))) return inData;
  let real = resolve(dataDir);
  try {
    real = await Deno.realPath(dataDir);
  } catch { /* keep the resolved path */ }
  const fallback = join(projectCacheRoot(), `${basename(real)}-${hashKey(real).slice(0, 12)}`);
  return (await writable(fallback)) ? fallback : null;
}

/**
 * The blob names {@link writeCache} gives: `<base>.<token>.bin`, a plain file name. An index
 * is data from disk, not a path to follow: a blob named anything else (`../../x`, an
 * absolute path) makes the whole index a corrupt cache, rebuilt and never read or deleted.
 */
function isOwnBlobName(name: unknown, base: string): name is string {
  return typeof name === "string" && name.startsWith(`${base}.`) &&
    /^[a-z0-9]+\.bin$/.test(name.slice(base.length + 1));
}

/** An entry as {@link writeCache} writes it: sizes, slot and, for a failure, its words. */
function isEntry(e: unknown): e is CacheEntry {
  if (!Array.isArray(e) || !e.slice(0, 3).every(Number.isSafeInteger)) return false;
  if (e.length === 3) return e[2] >= 0;
  return e.length === 5 && e[2] === -1 && typeof e[3] === "string" && typeof e[4] === "string";
}

/** The cache index at `path`, or null when it is missing, of another version or malformed. */
async function readIndex(path: string, base: string): Promise<CacheIndex | null> {
  try {
    const index = JSON.parse(await Deno.readTextFile(path)) as CacheIndex;
    if (index.version !== INDEX_VERSION || !isOwnBlobName(index.blob, base)) return null;
    if (typeof index.entries !== "object" || index.entries === null) return null;
    return Object.values(index.entries).every(isEntry) ? index : null;
  } catch {
    return null;
  }
}

/** Stats files with bounded concurrency; null for files that vanished. */
async function statAll(paths: readonly string[]): Promise<(Deno.FileInfo | null)[]> {
  const out: (Deno.FileInfo | null)[] = new Array(paths.length).fill(null);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      try {
        out[i] = await Deno.stat(paths[i]);
      } catch {
        out[i] = null;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, paths.length) }, worker));
  return out;
}

/** Preprocesses files on a pool of workers (or in this thread for small jobs), in order. */
async function decodeAll(
  paths: readonly string[],
  size: number,
  pad: number,
  fit: Fit,
  workers: number,
  progress: Progress,
  totalBytes: number,
): Promise<DecodeOutcome[]> {
  const out: DecodeOutcome[] = new Array(paths.length);
  const batchSize = Math.max(1, Math.min(32, Math.ceil(paths.length / (Math.max(1, workers) * 8))));
  const batches: DecodeRequest[] = [];
  for (let i = 0; i < paths.length; i += batchSize) {
    batches.push({ batch: i, paths: paths.slice(i, i + batchSize), size, pad, fit });
  }
  const store = (res: DecodeResponse) => {
    res.outcomes.forEach((o, k) => (out[res.batch + k] = o));
    progress.tick(res.outcomes.length);
  };
  // Starting a worker costs more than decoding a few dozen small files (not large ones).
  if (workers <= 0 || paths.length < 2 || (paths.length < 48 && totalBytes < 4e6)) {
    for (const b of batches) store(await runDecodeRequest(b));
    return out;
  }
  const pool = Array.from(
    { length: Math.min(workers, batches.length) },
    () => new Worker(new URL("./decode_worker.ts", import.meta.url).href, { type: "module" }),
  );
  try {
    let next = 0;
    await Promise.all(pool.map((w) =>
      new Promise<void>((resolveDone, reject) => {
        const send = () => {
          if (next >= batches.length) return resolveDone();
          w.postMessage(batches[next++]);
        };
        w.onmessage = (e: MessageEvent<DecodeResponse>) => {
          store(e.data);
          send();
        };
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`decode worker failed: ${e.message}`));
        };
        send();
      })
    ));
  } finally {
    for (const w of pool) w.terminate();
  }
  return out;
}

/**
 * Loads one split of a data folder as an {@link ImageSet} of `size x size` letterboxed gray
 * images, using and updating the preprocessing cache. Rows with bad labels, missing or
 * undecodable images are skipped and reported (`strict` makes them errors); an empty result
 * is always an error.
 */
export async function loadImageSet(dir: string, options: LoadOptions): Promise<LoadResult> {
  const { size, pad = 0, fit = "letterbox", strict = false, quiet = false } = options;
  if (!Number.isInteger(size) || size < 1) throw new DataError(`bad image size ${size}`);
  const layout = await findDataset(dir);
  const dataDir = layout.dir;
  const source = pickSplit(layout, options.split);
  const table = await readLabels(source);
  const report = table.report;
  const fail = (what: string): never => {
    throw new DataError(
      `${what} (${formatReport(report)})\n${formatSkips(report.skipped)}`,
      source.csvPath,
    );
  };
  if (strict && report.skipped.length > 0) fail("strict mode: rows skipped");
  const allRows = table.rows;
  const rows = options.limit === undefined ? allRows : allRows.slice(0, options.limit);

  const cacheDir = await resolveCacheDir(dataDir, options.cacheDir);
  const imageBytes = size * size;
  // Letterboxed caches keep the key they had before `fit` existed.
  const params = fit === "letterbox"
    ? { size, pad, preprocess: PREPROCESS_VERSION }
    : { size, pad, preprocess: PREPROCESS_VERSION, fit };
  const csvRel = relative(dataDir, source.csvPath);
  const base = `${source.name.replace(/[^\w.-]/g, "_")}-${size}px-` +
    hashKey(JSON.stringify({ params, csvRel })).slice(0, 12);
  const indexPath = cacheDir === null ? null : join(cacheDir, `${base}.json`);
  const old = indexPath === null ? null : await readIndex(indexPath, base);
  let oldBlob: Uint8Array | null = null;
  if (old !== null && cacheDir !== null) {
    try {
      oldBlob = await Deno.readFile(join(cacheDir, old.blob));
    } catch { /* a concurrent writer replaced it: everything is a miss */ }
  }
  const oldEntries = oldBlob !== null && old !== null ? old.entries : {};

  const keys = rows.map((r) => relative(dataDir, r.imagePath).split("\\").join("/"));
  const stats = await statAll(rows.map((r) => r.imagePath));
  const pixels: (Uint8Array | null)[] = new Array(rows.length).fill(null);
  const failures = new Map<number, { reason: SkipReason; error: string }>();
  const misses: number[] = [];
  for (let i = 0; i < rows.length; i++) {
    const st = stats[i];
    const e = oldEntries[keys[i]];
    const mtime = st?.mtime?.getTime() ?? 0;
    if (st === null || e === undefined || e[0] !== st.size || e[1] !== mtime) misses.push(i);
    else if (e[2] >= 0 && (e[2] + 1) * imageBytes <= oldBlob!.length) {
      pixels[i] = oldBlob!.subarray(e[2] * imageBytes, (e[2] + 1) * imageBytes);
    } else if (e[2] < 0) failures.set(i, { reason: e[3] as SkipReason, error: e[4] as string });
    else misses.push(i);
  }

  const progress = createProgress(
    `decoding ${source.name}`,
    misses.length,
    options.progress ?? !quiet,
  );
  const workers = options.workers ?? Math.min(8, navigator.hardwareConcurrency || 1);
  const outcomes = misses.length === 0 ? [] : await decodeAll(
    misses.map((i) => rows[i].imagePath),
    size,
    pad,
    fit,
    workers,
    progress,
    misses.reduce((n, i) => n + (stats[i]?.size ?? 0), 0),
  );
  if (misses.length > 0) progress.done();
  outcomes.forEach((o, k) => {
    if (o.ok) pixels[misses[k]] = o.pixels;
    else failures.set(misses[k], { reason: o.reason, error: o.error });
  });

  if (cacheDir !== null && indexPath !== null && misses.length > 0) {
    await writeCache(cacheDir, indexPath, base, {
      params,
      csvRel,
      keys,
      stats,
      pixels,
      failures,
      imageBytes,
      old: oldEntries,
      oldBlob,
      // Entries of rows outside `limit` stay, so a quick run does not evict a full cache.
      keep: new Set(allRows.map((r) => relative(dataDir, r.imagePath).split("\\").join("/"))),
    }, old?.blob);
  }

  const used: number[] = [];
  const skipped: SkippedRow[] = [];
  for (let i = 0; i < rows.length; i++) {
    const f = failures.get(i);
    if (f) {
      const r = rows[i];
      skipped.push({
        id: r.id,
        file: r.imagePath,
        line: r.line,
        reason: f.reason,
        detail: f.error,
      });
    } else used.push(i);
  }
  report.skipped = [...report.skipped, ...skipped].sort((a, b) => a.line - b.line);
  report.used = used.length;

  const set: ImageSet = {
    size,
    ids: used.map((i) => rows[i].id),
    images: new Uint8Array(used.length * imageBytes),
    male: Uint8Array.from(used, (i) => rows[i].male),
    boneage: Float32Array.from(used, (i) => rows[i].boneage),
  };
  used.forEach((i, k) => set.images.set(pixels[i]!, k * imageBytes));

  if (!quiet) {
    console.error(`${source.name} (${source.csvPath}): ${formatReport(report)}`);
    if (report.skipped.length > 0) console.error(formatSkips(report.skipped, 10));
    for (const w of report.warnings.slice(0, 10)) console.error(`warning: ${w}`);
  }
  if (strict && report.skipped.length > 0) fail("strict mode: rows skipped");
  if (used.length === 0) fail("empty data set: no usable images");
  return {
    set,
    rows: used.map((i) => rows[i]),
    report,
    cache: { dir: cacheDir, hits: rows.length - misses.length, decoded: misses.length },
    fingerprint: table.fingerprint,
  };
}

interface CacheWrite {
  params: CacheIndex["params"];
  csvRel: string;
  keys: string[];
  stats: (Deno.FileInfo | null)[];
  pixels: (Uint8Array | null)[];
  failures: Map<number, { reason: SkipReason; error: string }>;
  imageBytes: number;
  old: Record<string, CacheEntry>;
  oldBlob: Uint8Array | null;
  keep: Set<string>;
}

/**
 * Writes a fresh blob and index. The blob gets a new name and the index is renamed into
 * place last, so a concurrent reader sees either the old pair or the new one.
 */
async function writeCache(
  cacheDir: string,
  indexPath: string,
  base: string,
  w: CacheWrite,
  oldBlobName: string | undefined,
): Promise<void> {
  const entries: Record<string, CacheEntry> = {};
  const chunks: Uint8Array[] = [];
  const current = new Set(w.keys);
  w.keys.forEach((key, i) => {
    const st = w.stats[i];
    if (st === null) return;
    const mtime = st.mtime?.getTime() ?? 0;
    const f = w.failures.get(i);
    if (f) entries[key] = [st.size, mtime, -1, f.reason, f.error];
    else if (w.pixels[i]) {
      entries[key] = [st.size, mtime, chunks.length];
      chunks.push(w.pixels[i]!);
    }
  });
  for (const [key, e] of Object.entries(w.old)) {
    if (current.has(key) || !w.keep.has(key)) continue;
    if (e[2] < 0) entries[key] = e;
    else if (w.oldBlob && (e[2] + 1) * w.imageBytes <= w.oldBlob.length) {
      entries[key] = [e[0], e[1], chunks.length];
      chunks.push(w.oldBlob.subarray(e[2] * w.imageBytes, (e[2] + 1) * w.imageBytes));
    }
  }
  const blob = new Uint8Array(chunks.length * w.imageBytes);
  chunks.forEach((c, k) => blob.set(c, k * w.imageBytes));
  const blobName = `${base}.${Date.now().toString(36)}${
    Math.random().toString(36).slice(2, 8)
  }.bin`;
  const index: CacheIndex = {
    version: INDEX_VERSION,
    params: w.params,
    csv: w.csvRel,
    blob: blobName,
    entries,
  };
  try {
    const tmpBlob = join(cacheDir, `${blobName}.tmp`);
    await Deno.writeFile(tmpBlob, blob);
    await Deno.rename(tmpBlob, join(cacheDir, blobName));
    const tmpIndex = `${indexPath}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmpIndex, JSON.stringify(index));
    await Deno.rename(tmpIndex, indexPath);
    if (oldBlobName !== undefined && oldBlobName !== blobName) {
      await Deno.remove(join(cacheDir, oldBlobName)).catch(() => {});
    }
    // Blobs orphaned by a concurrent writer; the age limit spares one still being written.
    for await (const e of Deno.readDir(cacheDir)) {
      if (!e.name.startsWith(`${base}.`) || e.name === blobName || e.name.endsWith(".json")) {
        continue;
      }
      const path = join(cacheDir, e.name);
      const st = await Deno.stat(path).catch(() => null);
      if (st?.mtime && Date.now() - st.mtime.getTime() > 10 * 60_000) {
        await Deno.remove(path).catch(() => {});
      }
    }
  } catch (e) {
    // A cache that cannot be written costs time on the next run, never this run's data.
    console.error(`warning: cache not written to ${cacheDir}: ${(e as Error).message}`);
  }
}
