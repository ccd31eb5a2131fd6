/**
 * The geometry of a convolution or pooling window, one type for the ops, their float64
 * twins, the model's layer plan and the benchmark: NHWC input `[N, H, W, Cin]`, a `KH x KW`
 * window moved by `stride` over the input padded by `padding` zeros on every side, `Cout`
 * output channels. Output side: `floor((side + 2 * padding - kernel) / stride) + 1`.
 *
 * @module
 */

/** Shapes and hyper-parameters of one convolution (or pooling window, with Cout = Cin). */
export interface ConvGeometry {
  /** Batch size. */
  N: number;
  /** Input height and width. */
  H: number;
  W: number;
  /** Input and output channels. */
  Cin: number;
  Cout: number;
  /** Window height and width. */
  KH: number;
  KW: number;
  /** Step between outputs and zeros added on every side, the same along both axes. */
  stride: number;
  padding: number;
}

/** Output side of a window `kernel` moved by `stride` over `side` padded by `padding`. */
export function windowOutputSide(
  side: number,
  kernel: number,
  stride: number,
  padding = 0,
): number {
  return Math.floor((side + 2 * padding - kernel) / stride) + 1;
}

/** Output height and width of a convolution. */
export function outputSize(g: ConvGeometry): { OH: number; OW: number } {
  return {
    OH: windowOutputSide(g.H, g.KH, g.stride, g.padding),
    OW: windowOutputSide(g.W, g.KW, g.stride, g.padding),
  };
}

/** Multiply-adds times two of the forward pass (each backward pass costs the same). */
export function convFlops(g: ConvGeometry): number {
  const { OH, OW } = outputSize(g);
  return 2 * g.N * OH * OW * g.Cout * g.KH * g.KW * g.Cin;
}
