/**
 * Intensity steps of the image recipe, on a stored 8-bit image, before the augmentation
 * kernel reads it: a polarity check (radiographs show bone bright on a dark background; a
 * MONOCHROME1-style export shows the opposite), and one of two lookup tables over the
 * registered hand region: a stretch that puts the background at 0 and the hand's brightest
 * bone at 255 (any brightness or contrast change gives the same image; a gamma change keeps
 * both ends and bends only the middle), or histogram equalization, which maps any monotone
 * change of exposure to about the same image.
 *
 * @module
 */
import type { PixelAffine } from "../ops/augment.ts";

/**
 * How the recipe normalizes intensity: a stretch from the background to the hand's bright
 * bone, histogram equalization over the hand, or nothing.
 */
export type Intensity = "none" | "stretch" | "equalize";

/** The intensity steps, for parsers and help texts. */
export const INTENSITIES: readonly Intensity[] = ["none", "stretch", "equalize"];

/** Fraction of the registered region's pixels at or below {@link stretchTable}'s top. */
const STRETCH_TOP = 0.98;

/** Smallest `top - background` {@link stretchTable} divides by, in gray levels. */
const STRETCH_MIN_SPAN = 8;

/** Width of the border ring {@link looksInverted} reads, as a fraction of the side. */
const RING = 0.08;

/**
 * Whether a stored image looks inverted (background bright): the median of its outer ring
 * is above mid-gray. A hand never fills the ring of a radiograph, so its median is background.
 */
export function looksInverted(pixels: Uint8Array, size: number): boolean {
  return borderMedian(pixels, size) > 127;
}

/** Median of a stored image's outer ring ({@link RING}): its background level. */
export function borderMedian(pixels: Uint8Array, size: number): number {
  const band = Math.max(1, Math.round(RING * size));
  return medianWhere(
    pixels,
    size,
    (x, y) => y < band || y >= size - band || x < band || x >= size - band,
  );
}

/** Median of the pixels of a `size x size` image where `inside(x, y)` holds. */
export function medianWhere(
  pixels: Uint8Array,
  size: number,
  inside: (x: number, y: number) => boolean,
): number {
  const counts = new Uint32Array(256);
  let n = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (inside(x, y)) {
        counts[pixels[y * size + x]]++;
        n++;
      }
    }
  }
  let below = 0;
  for (let v = 0; v < 256; v++) {
    below += counts[v];
    if (below * 2 >= n) return v;
  }
  return 0;
}

/** `255 - v` for every pixel, in place. */
export function invertInPlace(pixels: Uint8Array): void {
  for (let i = 0; i < pixels.length; i++) pixels[i] = 255 - pixels[i];
}

/**
 * Histogram of the pixels of a stored image (side `size`) that the registration `reg`
 * (model input → stored pixels, side `size` both) brings into the model's frame.
 */
function registeredHistogram(pixels: Uint8Array, size: number, reg: PixelAffine) {
  // Inverse of p = M q + t: q = M^-1 (p - t).
  const det = reg[0] * reg[4] - reg[1] * reg[3];
  const i00 = reg[4] / det, i01 = -reg[1] / det, i10 = -reg[3] / det, i11 = reg[0] / det;
  const counts = new Float64Array(256);
  let n = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - reg[2], dy = y - reg[5];
      const qx = i00 * dx + i01 * dy, qy = i10 * dx + i11 * dy;
      if (qx >= -0.5 && qy >= -0.5 && qx < size - 0.5 && qy < size - 0.5) {
        counts[pixels[y * size + x]]++;
        n++;
      }
    }
  }
  return { counts, n };
}

/**
 * The histogram-equalization table of the registered region ({@link registeredHistogram}):
 * `lut[v] = 255 * (count below v + count at v / 2) / count`, the mid-rank of `v`.
 * Mid-ranks depend only on the order of the values, so any monotone exposure change that
 * keeps distinct values distinct yields the same table's output.
 */
export function equalizationTable(pixels: Uint8Array, size: number, reg: PixelAffine): Uint8Array {
  const { counts, n } = registeredHistogram(pixels, size, reg);
  const lut = new Uint8Array(256);
  let below = 0;
  for (let v = 0; v < 256; v++) {
    lut[v] = n === 0 ? v : Math.round((255 * (below + counts[v] / 2)) / n);
    below += counts[v];
  }
  return lut;
}

/**
 * The stretch table: `lut[v] = clamp(255 * (v - lo) / (hi - lo))`, with `lo` the image's
 * background ({@link borderMedian}) and `hi` the level below which {@link STRETCH_TOP} of the
 * registered region lies (the cortex of the hand's bones; a ruler or a letter marker is
 * smaller than the rest). Both are order statistics, so they move with any monotone exposure
 * change and the stretched image is unchanged by brightness and contrast; it also makes a
 * removed (black) background and a gray one the same.
 */
export function stretchTable(pixels: Uint8Array, size: number, reg: PixelAffine): Uint8Array {
  const lo = borderMedian(pixels, size);
  const { counts, n } = registeredHistogram(pixels, size, reg);
  let hi = 255;
  for (let v = 0, below = 0; v < 256; v++) {
    below += counts[v];
    if (below >= STRETCH_TOP * n) {
      hi = v;
      break;
    }
  }
  const span = Math.max(hi - lo, STRETCH_MIN_SPAN);
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) {
    lut[v] = Math.round(Math.min(255, Math.max(0, (255 * (v - lo)) / span)));
  }
  return lut;
}

/** Applies a lookup table to every pixel, in place. */
export function applyTableInPlace(pixels: Uint8Array, lut: Uint8Array): void {
  for (let i = 0; i < pixels.length; i++) pixels[i] = lut[pixels[i]];
}
