/**
 * Float64 CPU reference of the augmentation kernel, the twin of `kernels/augment.wgsl`:
 * same parameter layout, same sampling and photometric math, evaluated in double precision.
 *
 * @module
 */
import { PARAM_HEADER, PARAM_STRIDE } from "../ops/augment.ts";

/**
 * Augments and normalizes `count` images of side `size` (bytes back to back) with the
 * packed parameters `params` (header `[mean, std, count, 0]`, then 12 values per image).
 * Returns `[count, outSide, outSide, 1]` values.
 */
export function augmentReference(
  bytes: Uint8Array,
  params: ArrayLike<number>,
  size: number,
  outSide = size,
): Float64Array {
  const S = size;
  const O = outSide;
  const plane = S * S;
  const mean = params[0];
  const std = params[1];
  const count = params[2];
  if (bytes.length < count * plane) {
    throw new Error(`augmentReference: ${bytes.length} bytes for ${count} images of ${S}x${S}`);
  }
  const out = new Float64Array(count * O * O);
  for (let b = 0; b < count; b++) {
    const base = b * plane;
    const tap = (x: number, y: number) =>
      x < 0 || y < 0 || x >= S || y >= S ? 0 : bytes[base + y * S + x];
    const o = PARAM_HEADER + b * PARAM_STRIDE;
    const [m00, m01, m02, m10, m11, m12, contrast, offset, gamma] = Array.from(
      { length: 9 },
      (_, k) => params[o + k],
    );
    for (let y = 0; y < O; y++) {
      for (let x = 0; x < O; x++) {
        const sx = m00 * x + m01 * y + m02;
        const sy = m10 * x + m11 * y + m12;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const ax = sx - x0;
        const ay = sy - y0;
        const top = (1 - ax) * tap(x0, y0) + ax * tap(x0 + 1, y0);
        const bottom = (1 - ax) * tap(x0, y0 + 1) + ax * tap(x0 + 1, y0 + 1);
        const s = (1 - ay) * top + ay * bottom;
        let v = Math.min(Math.max((s / 255) * contrast + offset, 0), 1);
        if (gamma !== 1 && v > 0) v = Math.pow(v, gamma);
        out[b * O * O + y * O + x] = (v - mean) / std;
      }
    }
  }
  return out;
}
