/**
 * 2D convolution: NHWC activations `[N, H, W, Cin]`, HWIO weights `[KH, KW, Cin, Cout]`, bias
 * `[Cout]`, zero padding, `OH = floor((H + 2P - KH) / S) + 1` (likewise OW).
 * CPU twin: `src/ref/conv2d.ts`.
 *
 * Kernels, chosen per shape by {@link conv2dPrograms}:
 * - 1x1 stride-1 unpadded convolutions (the `paper` model's) on every adapter: `matmul.wgsl`,
 *   since NHWC makes them a product of a `[pixels, Cin]` and a `[Cin, Cout]` matrix
 *   (dL/dx and dL/dw are its transposed variants).
 * - with the "rows" kernels (an engine's `kernels`; `auto` picks them on CPU adapters such as
 *   lavapipe), 3x3 stride-1 convolutions (every conv of the `small` model)
 *   whose output channels are a multiple of 4: the generated "rows" kernels
 *   `conv2d_rows_vec4.wgsl` / `conv2d_rows_scalar.wgsl` (input channels a multiple of 4, or
 *   any count one at a time) compute y; dL/dx is the same kernel run over dL/dy with weights
 *   rotated and transposed by `conv2d_flip_weights.wgsl` (needs Cin % 4 == 0); dL/dw is
 *   `conv2d_wgrad_*.wgsl` (partial sums per range of rows) plus `sumMiddle`. See
 *   `conv2d_kernels.ts` for why they look the way they do.
 * - anything else, and every shape with the "generic" kernels (what `auto` picks on real
 *   GPUs: the rows kernels hold ~1000 floats per invocation, which a GPU would spill): `conv2d_forward_generic.wgsl`,
 *   `conv2d_backward_data_generic.wgsl` and `conv2d_backward_weight_generic.wgsl`
 *   (+ `sumMiddle`), one invocation per output element. There, dL/dx of a stride-1 square
 *   kernel is the flipped-weight trick again, with the generic forward kernel.
 * The bias gradient is `sumMiddle(dy)` over all output pixels.
 *
 * @module
 */
import { type ConvGeometry, outputSize } from "./geometry.ts";
import { type Bindings, type Engine, grid, type Program } from "../engine/engine.ts";
import { assertRank, type Shape, showShape, type Tensor } from "../engine/tensor.ts";
import { CONV_KERNEL_VARIANTS, type ConvKernelVariant, ROWS_WG } from "./conv2d_kernels.ts";
import { matmulBindings, matmulProgram } from "./linear.ts";
import { sumMiddle } from "./reduce.ts";

/** Stride and zero padding, the same along both spatial axes. */
export interface Conv2dOptions {
  /** Step between output pixels, in input pixels (default 1). */
  stride?: number;
  /** Zeros added on every side of the image (default 0). */
  padding?: number;
}

/** Every extent of one convolution, checked, with its output height and width. */
export interface Conv2dGeometry extends ConvGeometry {
  OH: number;
  OW: number;
}

/**
 * Checks the shapes of a convolution and derives its geometry. Throws an error naming
 * conv2d and both shapes when they do not fit together.
 */
export function conv2dGeometry(
  xShape: Shape,
  wShape: Shape,
  options: Conv2dOptions = {},
): Conv2dGeometry {
  const S = options.stride ?? 1;
  const P = options.padding ?? 0;
  const both = `x ${showShape(xShape)} and w ${showShape(wShape)}`;
  if (xShape.length !== 4) throw new Error(`conv2d: expected x of rank 4 (NHWC), got ${both}`);
  if (wShape.length !== 4) throw new Error(`conv2d: expected w of rank 4 (HWIO), got ${both}`);
  if (!Number.isInteger(S) || S < 1) throw new Error(`conv2d: stride ${S} must be an integer >= 1`);
  if (!Number.isInteger(P) || P < 0) {
    throw new Error(`conv2d: padding ${P} must be an integer >= 0`);
  }
  const [N, H, W, Cin] = xShape;
  const [KH, KW, wCin, Cout] = wShape;
  if (wCin !== Cin) {
    throw new Error(`conv2d: input channels differ (${Cin} vs ${wCin}), ${both}`);
  }
  const g = { N, H, W, Cin, Cout, KH, KW, stride: S, padding: P };
  const { OH, OW } = outputSize(g);
  if (OH < 1 || OW < 1) {
    throw new Error(
      `conv2d: the kernel does not fit the padded image (output ${OH}x${OW}), ${both}, ` +
        `stride ${S}, padding ${P}`,
    );
  }
  return { ...g, OH, OW };
}

// ---- plans: which kernel, which constants, how many workgroups -------------------------

/**
 * A kernel launch; `params` (for generated kernels) is bound as `params`. The callers name
 * their buffers as the convolution kernels do (`x, w, bias, y` forward, `dy, w, dx` for dL/dx,
 * `x, dy, part` for dL/dw); `bind` renames them for a kernel that names them otherwise.
 */
interface Launch {
  program: Program;
  params?: Uint32Array;
  bind?: (buffers: Bindings) => Bindings;
}

/**
 * A 1x1 stride-1 unpadded convolution is a matrix product over the `N * H * W` pixels (NHWC
 * makes `x` a `[pixels, Cin]` matrix and HWIO makes `w` a `[Cin, Cout]` one), so it runs on the
 * register-tiled `matmul.wgsl` on every adapter.
 */
function pointwise(g: Conv2dGeometry): boolean {
  return g.KH === 1 && g.KW === 1 && g.stride === 1 && g.padding === 0;
}

const variant = (file: string): ConvKernelVariant =>
  CONV_KERNEL_VARIANTS.find((v) => v.file === file)!;

/** Which convolution kernels an engine runs (its `kernels`, see `KernelPolicy`). */
export type ConvKernels = Engine["kernels"];

/** Whether the generated rows kernels may run this shape (3x3, stride 1) under `kernels`. */
function fastPath(g: Conv2dGeometry, kernels: ConvKernels): boolean {
  return kernels === "rows" && g.KH === 3 && g.KW === 3 && g.stride === 1;
}

/**
 * Row groups per invocation of a rows kernel: enough output pixels per invocation (about
 * 384) to pay for loading its blocks of weights, while keeping at least ~512 invocations for
 * the CPU's threads and SIMD lanes. `pixels` is the output pixels of one group.
 */
function groupsPerInvocation(groups: number, pixels: number, blocks: number): number {
  const wanted = Math.ceil(384 / pixels);
  const cap = Math.max(1, Math.floor((groups * blocks) / 512));
  return Math.max(1, Math.min(wanted, cap, groups));
}

/**
 * Launch of a rows kernel computing a stride-1 3x3 convolution of an `[N, H, W, cin]` map into
 * `[N, OH, OW, cout]` with padding `pad` (cout % 4 == 0).
 */
function rowsLaunch(
  N: number,
  H: number,
  W: number,
  cin: number,
  cout: number,
  pad: number,
  hasBias: boolean,
): Launch {
  const v = variant(
    cin % 4 === 0 ? "generated/conv2d_rows_vec4.wgsl" : "generated/conv2d_rows_scalar.wgsl",
  );
  const OH = H + 2 * pad - 2;
  const OW = W + 2 * pad - 2;
  const blocks = Math.ceil(cout / 4 / v.cout4Block);
  const groups = N * Math.ceil(OH / v.rowsPerStep);
  const R = groupsPerInvocation(groups, OW * v.rowsPerStep, blocks);
  const lanes = Math.ceil(groups / R) * blocks;
  return {
    program: { kernel: v.file, workgroupSize: [ROWS_WG], dispatch: grid(lanes, ROWS_WG) },
    params: Uint32Array.of(N, H, W, cin, cout, pad, OH, OW, R, hasBias ? 1 : 0, 0, 0),
  };
}

function forwardLaunch(g: Conv2dGeometry, hasBias: boolean, kernels: ConvKernels): Launch {
  if (pointwise(g)) {
    return {
      program: matmulProgram(g.N * g.H * g.W, g.Cout, g.Cin, false, false, hasBias),
      bind: ({ x, w, bias, y }) => matmulBindings(x, w, bias, y),
    };
  }
  if (fastPath(g, kernels) && g.Cout % 4 === 0) {
    return rowsLaunch(g.N, g.H, g.W, g.Cin, g.Cout, g.padding, hasBias);
  }
  const count = g.N * g.OH * g.OW * g.Cout;
  return {
    program: {
      kernel: "conv2d_forward_generic.wgsl",
      constants: { ...shapeConstants(g), HAS_BIAS: hasBias ? 1 : 0 },
      dispatch: grid(count),
    },
  };
}

function shapeConstants(g: Conv2dGeometry): Record<string, number> {
  return {
    N: g.N,
    H: g.H,
    W: g.W,
    CIN: g.Cin,
    COUT: g.Cout,
    KH: g.KH,
    KW: g.KW,
    S: g.stride,
    P: g.padding,
    OH: g.OH,
    OW: g.OW,
  };
}

/**
 * dL/dx. A stride-1 convolution with a square kernel and P <= K - 1 has as its dL/dx the
 * forward convolution of dy with the flipped, transposed weights and padding K - 1 - P, so
 * it runs as [flip the weights, forward kernel over dy]: the rows kernel on CPU adapters, and
 * on GPUs the generic forward kernel, which is several times faster there than the generic
 * dL/dx kernel (one invocation per dx element gathering over the window). Anything else (a
 * stride, or CPU-adapter shapes the rows kernel cannot take) uses the generic dL/dx kernel.
 */
function backwardDataLaunches(g: Conv2dGeometry, kernels: ConvKernels): Launch[] {
  if (pointwise(g)) {
    // dx [pixels, Cin] = dy [pixels, Cout] @ w^T, w stored [Cin, Cout].
    return [{
      program: matmulProgram(g.N * g.H * g.W, g.Cin, g.Cout, false, true, false),
      bind: ({ dy, w, dx }) => matmulBindings(dy, w, null, dx),
    }];
  }
  const transposable = g.stride === 1 && g.KH === g.KW && g.padding <= g.KH - 1;
  const rows = fastPath(g, kernels) && g.Cin % 4 === 0 && g.padding <= 2;
  if (transposable && (rows || kernels === "generic")) {
    const size = g.KH * g.KW * g.Cin * g.Cout;
    const flip: Launch = {
      program: {
        kernel: "conv2d_flip_weights.wgsl",
        constants: { KH: g.KH, KW: g.KW, CIN: g.Cin, COUT: g.Cout },
        dispatch: grid(size),
      },
    };
    // The transposed convolution reads dy with padding K - 1 - P and produces H x W.
    const pad = g.KH - 1 - g.padding;
    if (rows) return [flip, rowsLaunch(g.N, g.OH, g.OW, g.Cout, g.Cin, pad, false)];
    const transposed: Conv2dGeometry = {
      ...g,
      H: g.OH,
      W: g.OW,
      Cin: g.Cout,
      Cout: g.Cin,
      padding: pad,
      OH: g.H,
      OW: g.W,
    };
    return [flip, forwardLaunch(transposed, false, kernels)];
  }
  return [{
    program: {
      kernel: "conv2d_backward_data_generic.wgsl",
      constants: shapeConstants(g),
      dispatch: grid(g.N * g.H * g.W * g.Cin),
    },
  }];
}

/** dL/dw partial sums: the launch and how many partial sums per weight it leaves. */
function backwardWeightLaunch(
  g: Conv2dGeometry,
  kernels: ConvKernels,
): { launch: Launch; ranges: number } {
  const size = g.KH * g.KW * g.Cin * g.Cout;
  if (pointwise(g)) {
    // dw [Cin, Cout] = x^T @ dy, x stored [pixels, Cin]: one "range" of partial sums.
    const program = matmulProgram(g.Cin, g.Cout, g.N * g.H * g.W, true, false, false);
    const bind = ({ x, dy, part }: Bindings) => matmulBindings(x, dy, null, part);
    return { launch: { program, bind }, ranges: 1 };
  }
  if (fastPath(g, kernels) && g.Cout % 4 === 0) {
    const v = variant(
      g.Cin % 4 === 0 ? "generated/conv2d_wgrad_vec4.wgsl" : "generated/conv2d_wgrad_scalar.wgsl",
    );
    const blocks = Math.ceil(g.Cin / v.cinBlock) * Math.ceil(g.Cout / 4 / v.cout4Block);
    // Enough invocations to fill the machine, while the partial sums stay under 4 Mi floats.
    const groups = g.N * Math.ceil(g.OH / v.rowsPerStep);
    const maxRanges = Math.max(1, Math.min(groups, Math.floor(4 * 1024 * 1024 / size)));
    const wantRanges = Math.max(1, Math.min(maxRanges, Math.ceil(512 / blocks)));
    const R = Math.ceil(groups / wantRanges);
    const ranges = Math.ceil(groups / R);
    return {
      launch: {
        program: {
          kernel: v.file,
          workgroupSize: [ROWS_WG],
          dispatch: grid(ranges * blocks, ROWS_WG),
        },
        params: Uint32Array.of(g.N, g.H, g.W, g.Cin, g.Cout, g.padding, g.OH, g.OW, R, 0, 0, 0),
      },
      ranges,
    };
  }
  // About 256 Ki invocations (a GPU's worth) of at least 64 pixels each, and at most
  // 16 Mi partial sums.
  const M = g.N * g.OH * g.OW;
  const NCHUNK = Math.max(
    1,
    Math.min(Math.ceil(262144 / size), Math.ceil(M / 64), Math.floor(16 * 1024 * 1024 / size)),
  );
  const CHUNK = Math.ceil(M / NCHUNK);
  const chunks = Math.ceil(M / CHUNK);
  return {
    launch: {
      program: {
        kernel: "conv2d_backward_weight_generic.wgsl",
        constants: { ...shapeConstants(g), CHUNK, NCHUNK: chunks },
        dispatch: grid(chunks * size),
      },
    },
    ranges: chunks,
  };
}

/** The kernel launches of one convolution, for the tour and for benchmarks. */
export interface Conv2dPrograms {
  /** Computes y (one dispatch). */
  forward: Program;
  /** Computes dL/dx (weight flip + a forward kernel over dy, or the generic dL/dx kernel). */
  backwardData: Program[];
  /**
   * Computes dL/dw partial sums; `sumMiddle` (reduce_sum*.wgsl) then adds up the partial sums
   * of each weight.
   */
  backwardWeight: Program[];
}

/**
 * Which `.wgsl` files, constants and dispatch sizes compute a convolution of an `xShape`
 * input with `wShape` weights under `kernels` (an engine's `kernels`; "rows" is what a CPU
 * adapter runs). The generated kernels read their shapes from a parameter buffer, so their
 * programs carry no constants.
 */
export function conv2dPrograms(
  xShape: Shape,
  wShape: Shape,
  options: Conv2dOptions = {},
  kernels: ConvKernels = "rows",
): Conv2dPrograms {
  const g = conv2dGeometry(xShape, wShape, options);
  return {
    forward: forwardLaunch(g, true, kernels).program,
    backwardData: backwardDataLaunches(g, kernels).map((l) => l.program),
    backwardWeight: [backwardWeightLaunch(g, kernels).launch.program],
  };
}

// ---- running ---------------------------------------------------------------------------

/**
 * Parameter buffers of the generated kernels, one per distinct content and engine: training
 * repeats the same few shapes, so this stays small, and a buffer is never rewritten, so
 * commands recorded earlier keep seeing their own values.
 */
const paramBuffers = new WeakMap<Engine, Map<string, GPUBuffer>>();

function paramsBuffer(e: Engine, values: Uint32Array): GPUBuffer {
  let cache = paramBuffers.get(e);
  if (!cache) paramBuffers.set(e, cache = new Map());
  const key = values.join(",");
  let buffer = cache.get(key);
  if (!buffer) {
    buffer = e.device.createBuffer({
      label: `conv2d params ${key}`,
      size: values.byteLength,
      usage: GPUBufferUsage.STORAGE,
      mappedAtCreation: true,
    });
    new Uint32Array(buffer.getMappedRange()).set(values);
    buffer.unmap();
    cache.set(key, buffer);
  }
  return buffer;
}

function launch(e: Engine, l: Launch, buffers: Bindings): void {
  const named = l.bind ? l.bind(buffers) : buffers;
  e.run(l.program, l.params ? { params: paramsBuffer(e, l.params), ...named } : named);
}

function checkDy(op: string, dy: Tensor, g: Conv2dGeometry): void {
  const want = [g.N, g.OH, g.OW, g.Cout];
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== want[i])) {
    throw new Error(`${op}: dy ${showShape(dy.shape)} does not match output ${showShape(want)}`);
  }
}

/** `y = conv(x, w) + bias`, not recorded on the tape. Returns `[N, OH, OW, Cout]`. */
export function conv2dForward(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  options: Conv2dOptions = {},
): Tensor {
  const g = conv2dGeometry(x.shape, w.shape, options);
  if (bias) {
    assertRank("conv2d", bias, 1, "bias");
    if (bias.size !== g.Cout) {
      throw new Error(
        `conv2d: bias ${showShape(bias.shape)} does not match w ${showShape(w.shape)} ` +
          `(${g.Cout} output channels)`,
      );
    }
  }
  const e = x.engine;
  const y = e.empty([g.N, g.OH, g.OW, g.Cout]);
  // Without a bias the kernels never read it, but the binding must hold a buffer: w's.
  launch(e, forwardLaunch(g, bias !== null, e.kernels), { x, w, bias: bias ?? w, y });
  return y;
}

/**
 * dL/dx of a convolution, not recorded: `dy` is `[N, OH, OW, Cout]`, `w` the weights and
 * `xShape` the input's shape. Returns a tensor of shape `xShape`.
 */
export function conv2dBackwardData(
  dy: Tensor,
  w: Tensor,
  xShape: Shape,
  options: Conv2dOptions = {},
): Tensor {
  const g = conv2dGeometry(xShape, w.shape, options);
  checkDy("conv2dBackwardData", dy, g);
  const e = dy.engine;
  const dx = e.empty([g.N, g.H, g.W, g.Cin]);
  const launches = backwardDataLaunches(g, e.kernels);
  if (launches.length === 1) {
    launch(e, launches[0], { dy, w, dx });
  } else {
    const wt = e.empty([g.KH, g.KW, g.Cout, g.Cin]);
    launch(e, launches[0], { w, wt });
    // The forward kernel over dy with the flipped weights (no bias; wt fills its binding).
    launch(e, launches[1], { x: dy, w: wt, bias: wt, y: dx });
    wt.dispose();
  }
  return dx;
}

/**
 * dL/dw of a convolution, not recorded: `x` is the input, `dy` is `[N, OH, OW, Cout]` and
 * `wShape` the weights' shape. Returns a tensor of shape `wShape`.
 */
export function conv2dBackwardWeight(
  x: Tensor,
  dy: Tensor,
  wShape: Shape,
  options: Conv2dOptions = {},
): Tensor {
  const g = conv2dGeometry(x.shape, wShape, options);
  checkDy("conv2dBackwardWeight", dy, g);
  const e = x.engine;
  const size = g.KH * g.KW * g.Cin * g.Cout;
  const { launch: l, ranges } = backwardWeightLaunch(g, e.kernels);
  if (ranges === 1) {
    const dw = e.empty([...wShape]);
    launch(e, l, { x, dy, part: dw });
    return dw;
  }
  const part = e.empty([ranges, size]);
  launch(e, l, { x, dy, part });
  const dw = sumMiddle(part, 1, ranges, size, 1, wShape);
  part.dispose();
  return dw;
}

/** dL/dbias: the sum of `dy` over every output pixel. */
export function conv2dBackwardBias(dy: Tensor): Tensor {
  assertRank("conv2dBackwardBias", dy, 4, "dy");
  const C = dy.shape[3];
  return sumMiddle(dy, 1, dy.size / C, C, 1, [C]);
}

/**
 * 2D convolution, recorded on the tape. `x` is `[N, H, W, Cin]`, `w` is `[KH, KW, Cin, Cout]`,
 * `bias` is `[Cout]` or null; returns `[N, OH, OW, Cout]`. Backward computes only the
 * gradients that are needed (no dL/dx for an input image).
 */
export function conv2d(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  options: Conv2dOptions = {},
): Tensor {
  const y = conv2dForward(x, w, bias, options);
  const { N, H, W, Cin, Cout, KH, KW, stride, padding } = conv2dGeometry(x.shape, w.shape, options);
  const attrs = { N, H, W, Cin, Cout, KH, KW, stride, padding, hasBias: bias !== null };
  x.engine.tape.record("conv2d", bias ? [x, w, bias] : [x, w], y, (dy, needs) => [
    needs[0] ? conv2dBackwardData(dy, w, x.shape, options) : null,
    needs[1] ? conv2dBackwardWeight(x, dy, w.shape, options) : null,
    bias && needs[2] ? conv2dBackwardBias(dy) : null,
  ], attrs);
  return y;
}
