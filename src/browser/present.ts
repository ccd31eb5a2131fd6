/**
 * Words and pictures for an estimate on the page: the wording of `deno task predict` (whose
 * helpers live in `tasks/predict.ts`, which the browser bundle cannot import: it also imports
 * `node:util` and the CLI helpers that call `Deno.exit`) and the occlusion overlay drawn over
 * the full-resolution radiograph.
 *
 * @module
 */
import type { LetterboxBox } from "../data/image.ts";
import type { OcclusionMap } from "../occlusion.ts";

/** `"10 years 4 months"` for 124 months (as the CLI writes it). */
export function yearsAndMonths(months: number): string {
  const total = Math.round(months);
  const y = Math.floor(total / 12), m = total % 12;
  return `${y} year${y === 1 ? "" : "s"} ${m} month${m === 1 ? "" : "s"}`;
}

/** How the bone age compares with the chronological age (the CLI's `--age` line, in words). */
export function describeDifference(
  months: number,
  age: number,
  uncertainty: number,
): { difference: number; text: string } {
  const difference = months - age;
  const size = Math.abs(difference).toFixed(1);
  const word = Math.abs(difference) < 0.5
    ? "matches it"
    : `is ${difference > 0 ? "advanced" : "delayed"} by ${size} months`;
  const typical = Number.isFinite(uncertainty)
    ? Math.abs(difference) <= uncertainty
      ? ", within the model's typical error."
      : `, more than the model's typical error of ${uncertainty.toFixed(1)} months.`
    : ".";
  return { difference, text: `Bone age ${word}${typical}` };
}

/**
 * An RGBA overlay of `width x height` pixels for the radiograph shown at that size: red
 * where hiding a region lowered the estimate (the region made the hand look older), blue
 * where it raised it, with opacity up to 0.6 at the largest change. The same colours,
 * scaling and bilinear interpolation over cell centres as `renderOcclusionPng`, but
 * sampled over the radiograph's own area instead of the small letterboxed input, so it can
 * lie over the full-resolution image.
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

/** Gray samples (0..255, any numeric array) as opaque RGBA, for `ImageData`. */
export function grayToRgba(gray: ArrayLike<number>): Uint8ClampedArray<ArrayBuffer> {
  const rgba = new Uint8ClampedArray(gray.length * 4);
  for (let i = 0, o = 0; i < gray.length; i++, o += 4) {
    rgba[o] = rgba[o + 1] = rgba[o + 2] = gray[i];
    rgba[o + 3] = 255;
  }
  return rgba;
}
