/**
 * Float64 CPU reference of pooling, the twin of `kernels/maxpool2d_*.wgsl`,
 * `kernels/avgpool2d_*.wgsl` and `kernels/global_avgpool_*.wgsl`.
 *
 * Layout is NHWC: element (n, h, w, c) of an `[N, H, W, C]` array sits at
 * `((n * H + h) * W + w) * C + c`. Windows have no padding, so the output has
 * `OH = floor((H - K) / S) + 1` rows (and the same for columns); input rows past the last
 * window are never read and get a zero gradient.
 *
 * The backward passes here *scatter* (each output adds its gradient into the inputs of its
 * window), the obvious way to write them. The GPU kernels *gather* instead (each input sums
 * over the windows that contain it), so comparing the two checks the index math both ways.
 *
 * @module
 */

import { windowOutputSide } from "../ops/geometry.ts";

/** Result of {@link maxPool2dForward}. */
export interface MaxPoolResult {
  /** Pooled values, `[N, OH, OW, C]`. */
  y: Float64Array;
  /**
   * For each output, where the maximum sits inside its window: `kh * K + kw`.
   * The first maximum in row-major window order wins ties.
   */
  argmax: Int32Array;
}

/** Max pooling of `x` `[N, H, W, C]` with a `K x K` window and stride `S`. */
export function maxPool2dForward(
  x: Float64Array,
  N: number,
  H: number,
  W: number,
  C: number,
  K: number,
  S: number,
): MaxPoolResult {
  const OH = windowOutputSide(H, K, S);
  const OW = windowOutputSide(W, K, S);
  const y = new Float64Array(N * OH * OW * C);
  const argmax = new Int32Array(N * OH * OW * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        for (let c = 0; c < C; c++) {
          let best = -Infinity;
          let where = 0;
          for (let kh = 0; kh < K; kh++) {
            for (let kw = 0; kw < K; kw++) {
              const v = x[((n * H + oh * S + kh) * W + ow * S + kw) * C + c];
              // Strictly greater: an equal value later in the window does not replace the first.
              if (v > best) {
                best = v;
                where = kh * K + kw;
              }
            }
          }
          const o = ((n * OH + oh) * OW + ow) * C + c;
          y[o] = best;
          argmax[o] = where;
        }
      }
    }
  }
  return { y, argmax };
}

/** Gradient of max pooling: each output's gradient goes to the input that was its maximum. */
export function maxPool2dBackward(
  dy: Float64Array,
  argmax: Int32Array,
  N: number,
  H: number,
  W: number,
  C: number,
  K: number,
  S: number,
): Float64Array {
  const OH = windowOutputSide(H, K, S);
  const OW = windowOutputSide(W, K, S);
  const dx = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        for (let c = 0; c < C; c++) {
          const o = ((n * OH + oh) * OW + ow) * C + c;
          const kh = Math.floor(argmax[o] / K);
          const kw = argmax[o] % K;
          // `+=`: with overlapping windows one input can be the maximum of several outputs.
          dx[((n * H + oh * S + kh) * W + ow * S + kw) * C + c] += dy[o];
        }
      }
    }
  }
  return dx;
}

/** Average pooling of `x` `[N, H, W, C]` with a `K x K` window and stride `S`. */
export function avgPool2dForward(
  x: Float64Array,
  N: number,
  H: number,
  W: number,
  C: number,
  K: number,
  S: number,
): Float64Array {
  const OH = windowOutputSide(H, K, S);
  const OW = windowOutputSide(W, K, S);
  const y = new Float64Array(N * OH * OW * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        for (let c = 0; c < C; c++) {
          let sum = 0;
          for (let kh = 0; kh < K; kh++) {
            for (let kw = 0; kw < K; kw++) {
              sum += x[((n * H + oh * S + kh) * W + ow * S + kw) * C + c];
            }
          }
          y[((n * OH + oh) * OW + ow) * C + c] = sum / (K * K);
        }
      }
    }
  }
  return y;
}

/** Gradient of average pooling: each output spreads `dy / K²` over its window. */
export function avgPool2dBackward(
  dy: Float64Array,
  N: number,
  H: number,
  W: number,
  C: number,
  K: number,
  S: number,
): Float64Array {
  const OH = windowOutputSide(H, K, S);
  const OW = windowOutputSide(W, K, S);
  const dx = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        for (let c = 0; c < C; c++) {
          const g = dy[((n * OH + oh) * OW + ow) * C + c] / (K * K);
          for (let kh = 0; kh < K; kh++) {
            for (let kw = 0; kw < K; kw++) {
              dx[((n * H + oh * S + kh) * W + ow * S + kw) * C + c] += g;
            }
          }
        }
      }
    }
  }
  return dx;
}

/** Global average pooling: `[N, H, W, C]` to `[N, C]`, the mean over all H*W positions. */
export function globalAvgPoolForward(
  x: Float64Array,
  N: number,
  H: number,
  W: number,
  C: number,
): Float64Array {
  const y = new Float64Array(N * C);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < C; c++) y[n * C + c] += x[(n * H * W + p) * C + c];
    }
  }
  return y.map((v) => v / (H * W));
}

/** Gradient of global average pooling: every position of image n gets `dy[n, c] / (H*W)`. */
export function globalAvgPoolBackward(
  dy: Float64Array,
  N: number,
  H: number,
  W: number,
  C: number,
): Float64Array {
  const dx = new Float64Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < H * W; p++) {
      for (let c = 0; c < C; c++) dx[(n * H * W + p) * C + c] = dy[n * C + c] / (H * W);
    }
  }
  return dx;
}
