/**
 * Float64 CPU reference of `concatFeatures` (`kernels/concat_*.wgsl`).
 *
 * @module
 */

/** `[N, A] ++ [N, B] -> [N, A + B]`. */
export function concatForward(
  a: Float64Array,
  b: Float64Array,
  N: number,
  A: number,
  B: number,
): Float64Array {
  const y = new Float64Array(N * (A + B));
  for (let n = 0; n < N; n++) {
    y.set(a.subarray(n * A, (n + 1) * A), n * (A + B));
    y.set(b.subarray(n * B, (n + 1) * B), n * (A + B) + A);
  }
  return y;
}

/** Splits `dy [N, A + B]` into `da [N, A]` and `db [N, B]`. */
export function concatBackward(
  dy: Float64Array,
  N: number,
  A: number,
  B: number,
): { da: Float64Array; db: Float64Array } {
  const da = new Float64Array(N * A);
  const db = new Float64Array(N * B);
  for (let n = 0; n < N; n++) {
    da.set(dy.subarray(n * (A + B), n * (A + B) + A), n * A);
    db.set(dy.subarray(n * (A + B) + A, (n + 1) * (A + B)), n * B);
  }
  return { da, db };
}
