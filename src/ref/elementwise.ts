/**
 * Float64 CPU reference of `add`, `mul` and `scale` (`kernels/{add,mul,scale}.wgsl`).
 *
 * @module
 */

/** `a + b`; backward gives `dy` to both. */
export function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

/** `a * b`; backward: `da = dy * b`, `db = dy * a`. */
export function mul(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v * b[i]);
}

/** `s * x`; backward: `dx = s * dy`. */
export function scale(x: Float64Array, s: number): Float64Array {
  return x.map((v) => v * s);
}
