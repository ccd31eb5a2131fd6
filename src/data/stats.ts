/**
 * Intensity statistics of a training split, stored with the model: the GPU later feeds
 * `(x/255 - mean) / std` to the network.
 *
 * @module
 */
import type { ImageSet } from "./dataset.ts";

/** Mean and standard deviation of pixel values scaled to [0, 1]. */
export interface PixelStats {
  /** Mean of x/255. */
  mean: number;
  /** Population standard deviation of x/255 (never below 1e-6, so dividing is safe). */
  std: number;
  /** Images the statistics were computed over. */
  images: number;
}

/**
 * Mean and standard deviation of all pixels of the given images (all images when `indices`
 * is omitted), letterbox padding included since the network sees it too. Exact: it counts a
 * 256-bin histogram instead of summing floats.
 */
export function pixelStats(set: ImageSet, indices?: ArrayLike<number>): PixelStats {
  const hist = new Float64Array(256);
  const n = set.size * set.size;
  const count = indices ? indices.length : set.ids.length;
  for (let k = 0; k < count; k++) {
    const i = indices ? indices[k] : k;
    if (!(i >= 0 && i < set.ids.length)) throw new RangeError(`image index ${i} out of range`);
    const img = set.images.subarray(i * n, (i + 1) * n);
    for (let p = 0; p < n; p++) hist[img[p]]++;
  }
  let total = 0, sum = 0, sq = 0;
  for (let v = 0; v < 256; v++) {
    total += hist[v];
    sum += hist[v] * v;
    sq += hist[v] * v * v;
  }
  if (total === 0) throw new RangeError("pixelStats: no images");
  const mean = sum / total;
  const variance = Math.max(0, sq / total - mean * mean);
  return { mean: mean / 255, std: Math.max(1e-6, Math.sqrt(variance) / 255), images: count };
}
