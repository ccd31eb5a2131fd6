/**
 * Occlusion sensitivity: which parts of the radiograph moved the estimate. A gray square
 * slides over the letterboxed input; for each position the model predicts again, and the
 * change in predicted bone age is the map's value there (positive: hiding this region lowered
 * the estimate, i.e. the region made the hand look older).
 *
 * @module
 */
import type { Normalization } from "./checkpoint.ts";
import type { ImageSet } from "../data/dataset.ts";
import { type GrayImage, type LetterboxBox, letterboxBox, resizeGray } from "../data/image.ts";
import { encodeRgbPng } from "../data/png.ts";
import type { BoneAgeNet } from "../model/network.ts";
import { predictMonths } from "./predict.ts";

/** A coarse map over the model input. */
export interface OcclusionMap {
  /** Cells per side. */
  cells: number;
  /** `cells * cells` values, months: baseline - prediction with the cell hidden. */
  values: Float32Array;
}

/**
 * Predicts once per occluder position (a `size/6` square on a `cells x cells` grid) for the
 * single letterboxed image `pixels` (side `size`).
 */
export async function occlusionMap(
  model: BoneAgeNet,
  pixels: Uint8Array,
  size: number,
  male: number,
  norm: Normalization,
  baseline: number,
  cells = 12,
): Promise<OcclusionMap> {
  const patch = Math.max(2, Math.round(size / 6));
  const fill = Math.round(norm.pixelMean * 255); // hides detail without adding an edge of its own
  const count = cells * cells;
  const images = new Uint8Array(count * size * size);
  for (let c = 0; c < count; c++) {
    const img = images.subarray(c * size * size, (c + 1) * size * size);
    img.set(pixels);
    const cy = ((Math.floor(c / cells) + 0.5) * size) / cells;
    const cx = (((c % cells) + 0.5) * size) / cells;
    const y0 = Math.max(0, Math.round(cy - patch / 2)),
      x0 = Math.max(0, Math.round(cx - patch / 2));
    for (let y = y0; y < Math.min(size, y0 + patch); y++) {
      img.fill(fill, y * size + x0, y * size + Math.min(size, x0 + patch));
    }
  }
  const set: ImageSet = {
    size,
    ids: Array.from({ length: count }, (_, i) => `occlusion-${i}`),
    images,
    male: new Uint8Array(count).fill(male),
    boneage: new Float32Array(count).fill(NaN),
  };
  const predicted = await predictMonths(model, set, [...Array(count).keys()], norm);
  return { cells, values: predicted.map((p) => baseline - p) };
}

/**
 * An RGBA overlay of `width x height` pixels for the radiograph shown at that size: red
 * where hiding a region lowered the estimate (the region made the hand look older), blue
 * where it raised it, with opacity up to 0.6 at the largest change. Each display pixel is
 * mapped through the letterbox `box` into the model input (side `size`) and interpolated
 * bilinearly between cell centres, so the map lies over the full-resolution radiograph.
 * The reader page and `deno task predict --heatmap` both draw it.
 */
export function occlusionOverlay(
  map: OcclusionMap,
  box: LetterboxBox,
  size: number,
  width: number,
  height: number,
): Uint8ClampedArray<ArrayBuffer> {
  const rgba = new Uint8ClampedArray(width * height * 4);
  const v = map.values, cells = map.cells;
  const peak = Math.max(1e-6, ...Array.from(v, Math.abs));
  for (let y = 0; y < height; y++) {
    // Display pixel centre -> letterbox coordinates -> map coordinates (cell centres).
    const ly = box.y + ((y + 0.5) / height) * box.height;
    const fy = Math.min(cells - 1, Math.max(0, (ly / size) * cells - 0.5));
    const y0 = Math.floor(fy), y1 = Math.min(cells - 1, y0 + 1), ty = fy - y0;
    for (let x = 0; x < width; x++) {
      const lx = box.x + ((x + 0.5) / width) * box.width;
      const fx = Math.min(cells - 1, Math.max(0, (lx / size) * cells - 0.5));
      const x0 = Math.floor(fx), x1 = Math.min(cells - 1, x0 + 1), tx = fx - x0;
      const m = (1 - ty) * ((1 - tx) * v[y0 * cells + x0] + tx * v[y0 * cells + x1]) +
        ty * ((1 - tx) * v[y1 * cells + x0] + tx * v[y1 * cells + x1]);
      const o = (y * width + x) * 4;
      if (m >= 0) [rgba[o], rgba[o + 1], rgba[o + 2]] = [255, 40, 40];
      else [rgba[o], rgba[o + 1], rgba[o + 2]] = [40, 90, 255];
      rgba[o + 3] = Math.round(Math.min(1, Math.abs(m) / peak) * 0.6 * 255);
    }
  }
  return rgba;
}

/** Longest side of the heatmap PNG `predict` writes (the radiograph's own size if smaller). */
export const HEATMAP_MAX_SIDE = 1024;

/**
 * The occlusion map over the radiograph itself, as an RGB PNG: `gray` at its own aspect and
 * resolution (shrunk so its longer side is at most `maxSide`), with {@link occlusionOverlay}
 * composited over it, as the reader page shows it.
 */
export function renderHeatmapPng(
  gray: GrayImage,
  size: number,
  map: OcclusionMap,
  maxSide = HEATMAP_MAX_SIDE,
): Uint8Array {
  const fit = Math.min(1, maxSide / Math.max(gray.width, gray.height));
  const w = Math.max(1, Math.round(gray.width * fit)),
    h = Math.max(1, Math.round(gray.height * fit));
  const base = resizeGray(gray, w, h);
  const overlay = occlusionOverlay(map, letterboxBox(gray.width, gray.height, size), size, w, h);
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const g = Math.min(255, Math.max(0, base[i]));
    const a = overlay[4 * i + 3] / 255;
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(g * (1 - a) + overlay[4 * i + c] * a);
  }
  return encodeRgbPng(rgb, w, h);
}
