/**
 * Pictures for an estimate on the page: the occlusion overlay (`src/app/occlusion.ts`, which
 * `deno task predict --heatmap` draws too) over the full-resolution radiograph. The words come
 * from `src/app/wording.ts`, shared with `deno task predict`.
 *
 * @module
 */
export { describeDifference, NOT_A_DEVICE, yearsAndMonths } from "../wording.ts";
export { occlusionOverlay } from "../occlusion.ts";

/** Gray samples (0..255, any numeric array) as opaque RGBA, for `ImageData`. */
export function grayToRgba(gray: ArrayLike<number>): Uint8ClampedArray<ArrayBuffer> {
  const rgba = new Uint8ClampedArray(gray.length * 4);
  for (let i = 0, o = 0; i < gray.length; i++, o += 4) {
    rgba[o] = rgba[o + 1] = rgba[o + 2] = gray[i];
    rgba[o + 3] = 255;
  }
  return rgba;
}
