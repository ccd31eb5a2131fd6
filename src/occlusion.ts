/**
 * Occlusion sensitivity: which parts of the radiograph moved the estimate. A gray square
 * slides over the letterboxed input; for each position the model predicts again, and the
 * change in predicted bone age is the map's value there (positive: hiding this region lowered
 * the estimate, i.e. the region made the hand look older).
 *
 * @module
 */
import type { Normalization } from "./checkpoint.ts";
import type { ImageSet } from "./data/dataset.ts";
import { encodeRgbPng } from "./data/png.ts";
import type { BoneAgeNet } from "./nn.ts";
import { predictMonths } from "./training.ts";

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
 * Renders the map over the radiograph as an RGB PNG: the letterboxed input in gray, red
 * where hiding a region lowered the estimate, blue where it raised it, scaled to the largest
 * change. `scale` enlarges the input for viewing.
 */
export function renderOcclusionPng(
  pixels: Uint8Array,
  size: number,
  map: OcclusionMap,
  scale = 4,
): Uint8Array {
  const out = size * scale;
  const rgb = new Uint8Array(out * out * 3);
  const peak = Math.max(1e-6, ...map.values.map(Math.abs));
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      // Bilinear over cell centres keeps the overlay smooth instead of blocky.
      const fy = Math.min(map.cells - 1, Math.max(0, (y / out) * map.cells - 0.5));
      const fx = Math.min(map.cells - 1, Math.max(0, (x / out) * map.cells - 0.5));
      const y0 = Math.floor(fy), x0 = Math.floor(fx);
      const y1 = Math.min(map.cells - 1, y0 + 1), x1 = Math.min(map.cells - 1, x0 + 1);
      const ty = fy - y0, tx = fx - x0;
      const v = map.values;
      const m = (1 - ty) * ((1 - tx) * v[y0 * map.cells + x0] + tx * v[y0 * map.cells + x1]) +
        ty * ((1 - tx) * v[y1 * map.cells + x0] + tx * v[y1 * map.cells + x1]);
      const a = Math.min(1, Math.abs(m) / peak) * 0.6;
      const g = pixels[Math.floor(y / scale) * size + Math.floor(x / scale)];
      const o = (y * out + x) * 3;
      const [r, gg, b] = m >= 0 ? [255, 40, 40] : [40, 90, 255];
      rgb[o] = Math.round(g * (1 - a) + r * a);
      rgb[o + 1] = Math.round(g * (1 - a) + gg * a);
      rgb[o + 2] = Math.round(g * (1 - a) + b * a);
    }
  }
  return encodeRgbPng(rgb, out, out);
}
