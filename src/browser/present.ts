/**
 * Pictures for an estimate on the page: the occlusion overlay drawn over the full-resolution
 * radiograph. The words come from `src/wording.ts`, shared with `deno task predict`.
 *
 * @module
 */
export { describeDifference, NOT_A_DEVICE, yearsAndMonths } from "../wording.ts";
import type { LetterboxBox } from "../data/image.ts";
import type { OcclusionMap } from "../occlusion.ts";

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
