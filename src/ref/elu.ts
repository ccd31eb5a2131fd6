/**
 * Float64 CPU reference of ELU, the twin of `kernels/elu_*.wgsl`.
 *
 * @module
 */

/** `y = x` for `x > 0`, else `alpha * (exp(x) - 1)`. */
export function eluForward(x: Float64Array, alpha = 1): Float64Array {
  return x.map((v) => (v > 0 ? v : alpha * Math.expm1(v)));
}

/** `dx = dy` for `x > 0`, else `dy * alpha * exp(x)`. */
export function eluBackward(x: Float64Array, dy: Float64Array, alpha = 1): Float64Array {
  return dy.map((g, i) => (x[i] > 0 ? g : g * alpha * Math.exp(x[i])));
}
