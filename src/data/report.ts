/**
 * Errors and the skipped-row report of the data pipeline: nothing is dropped silently.
 *
 * @module
 */
import { formatCount } from "../util.ts";

/** A fatal problem with the input data; the message names the file and, where known, the line. */
export class DataError extends Error {
  /** File the problem is in, when there is one. */
  readonly file?: string;
  /** 1-based line in `file`, when the problem is one CSV row. */
  readonly line?: number;

  /** Builds the error; `file`/`line` are prefixed to the message so a log line says where. */
  constructor(message: string, file?: string, line?: number) {
    const where = file === undefined ? "" : line === undefined ? `${file}: ` : `${file}:${line}: `;
    super(where + message);
    this.name = "DataError";
    this.file = file;
    this.line = line;
  }
}

/** Why a CSV row did not make it into the data set. */
export type SkipReason =
  | "missing id"
  | "duplicate id"
  | "bad age"
  | "bad sex"
  | "missing image"
  | "corrupt PNG"
  | "corrupt JPEG"
  | "corrupt image";

/** One row left out, with enough detail to find it. */
export interface SkippedRow {
  /** Image id ("" when the row had none). */
  id: string;
  /** The file the problem was found in: the CSV for label problems, the image otherwise. */
  file: string;
  /** 1-based CSV line of the row. */
  line: number;
  /** Category, used for the one-line summary. */
  reason: SkipReason;
  /** Human-readable specifics (the bad value, the decoder's message). */
  detail: string;
}

/** What a load used and what it left out. */
export interface LoadReport {
  /** Rows that made it into the data set. */
  used: number;
  /** Rows left out, in CSV order. */
  skipped: SkippedRow[];
  /** Problems that did not cost a row (e.g. a test id without a reference label). */
  warnings: string[];
}

/** Empty report to fill in. */
export function emptyReport(): LoadReport {
  return { used: 0, skipped: [], warnings: [] };
}

/** One-line summary: `used 11,598, skipped 13: 9 missing image, 4 corrupt PNG`. */
export function formatReport(report: LoadReport): string {
  const head = `used ${formatCount(report.used)}, skipped ${formatCount(report.skipped.length)}`;
  if (report.skipped.length === 0) return head;
  const counts = new Map<SkipReason, number>();
  for (const s of report.skipped) counts.set(s.reason, (counts.get(s.reason) ?? 0) + 1);
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([r, n]) => `${formatCount(n)} ${r}`);
  return `${head}: ${parts.join(", ")}`;
}

/** One line per skipped row (at most `max`), for logs and strict-mode errors. */
export function formatSkips(skipped: readonly SkippedRow[], max = 20): string {
  const lines = skipped.slice(0, max).map((s) =>
    `  ${s.file}:${s.line}: ${s.reason}${s.id ? ` (id ${s.id})` : ""}: ${s.detail}`
  );
  if (skipped.length > max) lines.push(`  ... and ${formatCount(skipped.length - max)} more`);
  return lines.join("\n");
}
