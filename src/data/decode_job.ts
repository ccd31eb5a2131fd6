/**
 * The unit of decoding work shared by the worker and the in-thread path: read a file,
 * decode, letterbox; failures come back as values so one bad file never stops a batch.
 *
 * @module
 */
import { extname } from "node:path";
import { type Fit, PermissionError, preprocessImage, readImageFile, sniffFormat } from "./image.ts";
import type { SkipReason } from "./report.ts";

/** A batch of files to preprocess with one parameter set. */
export interface DecodeRequest {
  /** Caller's batch number, echoed back. */
  batch: number;
  /** Image files to read. */
  paths: string[];
  /** Square output side. */
  size: number;
  /** Letterbox fill value. */
  pad: number;
  /** How each image becomes a square. */
  fit: Fit;
}

/** The outcome for one file. */
export type DecodeOutcome =
  | { ok: true; pixels: Uint8Array }
  | { ok: false; reason: SkipReason; error: string };

/** A finished batch, in the order of the request's paths. */
export interface DecodeResponse {
  /** The request's batch number. */
  batch: number;
  /** One outcome per path. */
  outcomes: DecodeOutcome[];
}

/** Preprocesses every file of a request; throws only for a {@link PermissionError}. */
export async function runDecodeRequest(req: DecodeRequest): Promise<DecodeResponse> {
  const outcomes: DecodeOutcome[] = [];
  for (const path of req.paths) {
    let bytes: Uint8Array;
    try {
      bytes = await readImageFile(path);
    } catch (e) {
      const reason = e instanceof Deno.errors.NotFound ? "missing image" : "corrupt image";
      outcomes.push({ ok: false, reason, error: `cannot read: ${(e as Error).message}` });
      continue;
    }
    try {
      const { pixels } = await preprocessImage(bytes, req.size, req.pad, req.fit);
      outcomes.push({ ok: true, pixels });
    } catch (e) {
      if (e instanceof PermissionError) throw e;
      // Name the format the bytes claim, falling back to the extension for garbage files.
      const sniffed = sniffFormat(bytes);
      const ext = extname(path).toLowerCase();
      const kind = sniffed !== "unknown" ? sniffed : ext === ".png" ? "png" : ext ? "jpeg" : "";
      const reason = kind === "png"
        ? "corrupt PNG"
        : kind === "jpeg"
        ? "corrupt JPEG"
        : "corrupt image";
      const msg = bytes.length === 0 ? "empty file" : (e as Error).message || String(e);
      outcomes.push({ ok: false, reason, error: msg });
    }
  }
  return { batch: req.batch, outcomes };
}
