/**
 * Float64 CPU reference of `reduce_sum.wgsl`.
 *
 * @module
 */

/** `y[b, c] = scale * sum_r x[b, r, c]` for `x` viewed as `[B, R, C]`. */
export function sumMiddle(
  x: Float64Array,
  B: number,
  R: number,
  C: number,
  scale = 1,
): Float64Array {
  const y = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < C; c++) y[b * C + c] += x[(b * R + r) * C + c];
    }
  }
  return y.map((v) => v * scale);
}
