/**
 * Float64 CPU reference of `linear` and `matmul` (`kernels/matmul.wgsl`).
 *
 * @module
 */

/** `c[M, N] = a[M, K] @ b[K, N]` (row-major). */
export function matmul(
  a: Float64Array,
  b: Float64Array,
  M: number,
  K: number,
  N: number,
): Float64Array {
  const c = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const v = a[m * K + k];
      for (let n = 0; n < N; n++) c[m * N + n] += v * b[k * N + n];
    }
  }
  return c;
}

/** Transpose of a row-major `[R, C]` matrix. */
export function transpose(a: Float64Array, R: number, C: number): Float64Array {
  const t = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c];
  return t;
}

/** `y = x @ w + b` for `x [N, In]`, `w [In, Out]`, `b [Out]` (or no bias). */
export function linearForward(
  x: Float64Array,
  w: Float64Array,
  b: Float64Array | null,
  N: number,
  In: number,
  Out: number,
): Float64Array {
  const y = matmul(x, w, N, In, Out);
  if (b) { for (let i = 0; i < y.length; i++) y[i] += b[i % Out]; }
  return y;
}

/** Gradients of `linear`: `dx = dy @ w^T`, `dw = x^T @ dy`, `db = column sums of dy`. */
export function linearBackward(
  x: Float64Array,
  w: Float64Array,
  dy: Float64Array,
  N: number,
  In: number,
  Out: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = matmul(dy, transpose(w, In, Out), N, Out, In);
  const dw = matmul(transpose(x, N, In), dy, In, N, Out);
  const db = new Float64Array(Out);
  for (let i = 0; i < dy.length; i++) db[i % Out] += dy[i];
  return { dx, dw, db };
}
