/**
 * Float64 CPU reference of ReLU, the twin of `kernels/relu_*.wgsl`.
 *
 * @module
 */

/** `y = max(x, 0)`. */
export function reluForward(x: Float64Array): Float64Array {
  return x.map((v) => Math.max(v, 0));
}

/** `dx = dy` where `x > 0`, else 0. */
export function reluBackward(x: Float64Array, dy: Float64Array): Float64Array {
  return dy.map((g, i) => (x[i] > 0 ? g : 0));
}
