/**
 * Float64 CPU reference of the 2D convolution, the twin of `kernels/conv2d_*.wgsl`.
 *
 * Layouts: activations NHWC `[N, H, W, C]`, weights HWIO `[KH, KW, Cin, Cout]`, bias `[Cout]`.
 * With stride S and zero padding P the output has `OH = floor((H + 2P - KH) / S) + 1` rows
 * (and likewise OW), and
 *
 *     y[n, oy, ox, co] = bias[co] + sum_{ky, kx, ci} x[n, oy*S - P + ky, ox*S - P + kx, ci]
 *                                                     * w[ky, kx, ci, co]
 *
 * where reads outside the image count as zero. The three backward functions follow from that
 * one formula: every product `x * w` above sends `dy * w` to the x it read and `dy * x` to the
 * w it read. They are written as the same loop nest as the forward pass, so a reader can see
 * that each gradient just scatters along the forward's index math.
 *
 * @module
 */

import { type ConvGeometry, outputSize } from "../ops/geometry.ts";

export type { ConvGeometry } from "../ops/geometry.ts";

/**
 * Calls `visit(xIndex, wIndex, yIndex)` for every product of the forward pass, skipping taps
 * that fall into the zero padding. All four functions below are this loop nest.
 */
function forEachProduct(
  g: ConvGeometry,
  visit: (xi: number, wi: number, yi: number) => void,
): void {
  const { N, H, W, Cin, Cout, KH, KW, stride, padding } = g;
  const { OH, OW } = outputSize(g);
  for (let n = 0; n < N; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const yBase = ((n * OH + oy) * OW + ox) * Cout;
        for (let ky = 0; ky < KH; ky++) {
          const iy = oy * stride - padding + ky;
          if (iy < 0 || iy >= H) continue;
          for (let kx = 0; kx < KW; kx++) {
            const ix = ox * stride - padding + kx;
            if (ix < 0 || ix >= W) continue;
            for (let ci = 0; ci < Cin; ci++) {
              const xi = ((n * H + iy) * W + ix) * Cin + ci;
              const wBase = ((ky * KW + kx) * Cin + ci) * Cout;
              for (let co = 0; co < Cout; co++) visit(xi, wBase + co, yBase + co);
            }
          }
        }
      }
    }
  }
}

/** `y = conv(x, w) + bias`; returns `[N, OH, OW, Cout]` flattened. */
export function conv2dForward(
  x: Float64Array,
  w: Float64Array,
  bias: Float64Array | null,
  g: ConvGeometry,
): Float64Array {
  const { OH, OW } = outputSize(g);
  const y = new Float64Array(g.N * OH * OW * g.Cout);
  if (bias) { for (let i = 0; i < y.length; i++) y[i] = bias[i % g.Cout]; }
  forEachProduct(g, (xi, wi, yi) => {
    y[yi] += x[xi] * w[wi];
  });
  return y;
}

/** Gradient of the input: `dx[xi] += dy[yi] * w[wi]` over every forward product. */
export function conv2dBackwardData(
  dy: Float64Array,
  w: Float64Array,
  g: ConvGeometry,
): Float64Array {
  const dx = new Float64Array(g.N * g.H * g.W * g.Cin);
  forEachProduct(g, (xi, wi, yi) => {
    dx[xi] += dy[yi] * w[wi];
  });
  return dx;
}

/** Gradient of the weights: `dw[wi] += x[xi] * dy[yi]` over every forward product. */
export function conv2dBackwardWeight(
  x: Float64Array,
  dy: Float64Array,
  g: ConvGeometry,
): Float64Array {
  const dw = new Float64Array(g.KH * g.KW * g.Cin * g.Cout);
  forEachProduct(g, (xi, wi, yi) => {
    dw[wi] += x[xi] * dy[yi];
  });
  return dw;
}

/** Gradient of the bias: `dbias[co] = sum over n, oy, ox of dy[n, oy, ox, co]`. */
export function conv2dBackwardBias(dy: Float64Array, g: ConvGeometry): Float64Array {
  const db = new Float64Array(g.Cout);
  for (let i = 0; i < dy.length; i++) db[i % g.Cout] += dy[i];
  return db;
}
