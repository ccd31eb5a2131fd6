/**
 * Float64 CPU reference of `kernels/dropout.wgsl`, with the same integer hash so masks match
 * the GPU bit for bit.
 *
 * @module
 */

/** lowbias32: the kernel's 32-bit integer mix. */
export function hash32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Per-element multiplier: `1 / (1 - p)` where element `i` is kept, else 0. */
export function dropoutMask(n: number, p: number, seed: number): Float64Array {
  const thresh = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  const key = hash32((seed ^ 0x9e3779b9) >>> 0);
  const scale = Math.fround(1 / (1 - p));
  const mask = new Float64Array(n);
  for (let i = 0; i < n; i++) mask[i] = hash32((i ^ key) >>> 0) >= thresh ? scale : 0;
  return mask;
}

/** `y = x * mask`; the backward is the same map applied to `dy`. */
export function dropoutForward(x: Float64Array, p: number, seed: number): Float64Array {
  const mask = dropoutMask(x.length, p, seed);
  return x.map((v, i) => v * mask[i]);
}
