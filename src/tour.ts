/**
 * The tour behind `deno task tour`: one training step of a bone-age network, taken apart.
 *
 * {@link runTour} runs the forward pass layer by layer with the same ops, in the same order, as
 * `BoneAgeNet.forward` (it walks `config.trunk` and finds each layer's tensors by their
 * checkpoint names), then the backward pass by walking the autograd tape from the end and
 * calling each entry's `backward` itself (what `Tape.gradients` does), then one Adam update.
 * The whole step is recorded like a training step and submitted at once, with every dispatch
 * timed on the GPU's clock (`Engine.startProfile`). Afterwards it reads every op's inputs back,
 * runs the op's float64 CPU twin (`src/ref/`) on exactly those inputs and compares.
 *
 * {@link formatTour} turns the result into the narrated text; {@link saveTourImages} writes
 * the pictures. `tests/tour_test.ts` checks every op the tour lists.
 *
 * @module
 */
import { type GrayImage, letterbox } from "./data/image.ts";
import { encodeGrayPng, encodeRgbPng } from "./data/png.ts";
import { renderHand, sampleSubject, type SynthSubject } from "./data/synth.ts";
import { hashKey, mulberry32 } from "./data/util.ts";
import type { TapeEntry } from "./autograd.ts";
import { Engine, type Program } from "./engine.ts";
import { convFlops } from "./geometry.ts";
import { getConfig, headLayer, type ModelConfig, planLayers } from "./models.ts";
import { BoneAgeNet } from "./nn.ts";
import { batchNorm2d } from "./ops/batchnorm.ts";
import { concatFeatures } from "./ops/concat.ts";
import { conv2d } from "./ops/conv2d.ts";
import { elu } from "./ops/elu.ts";
import { linear } from "./ops/linear.ts";
import { l1Loss } from "./ops/loss.ts";
import { globalAvgPool, maxPool2d } from "./ops/pool.ts";
import { relu } from "./ops/relu.ts";
import { reshape } from "./ops/reshape.ts";
import { Adam } from "./optim.ts";
import * as refBn from "./ref/batchnorm.ts";
import * as refConcat from "./ref/concat.ts";
import * as refConv from "./ref/conv2d.ts";
import * as refElu from "./ref/elu.ts";
import * as refLinear from "./ref/linear.ts";
import * as refLoss from "./ref/loss.ts";
import { AdamRef } from "./ref/optim.ts";
import * as refPool from "./ref/pool.ts";
import * as refRelu from "./ref/relu.ts";
import type { Shape, Tensor } from "./tensor.ts";

/** Bone-age normalization used by the tour: months = 127 + 41 * output. */
export const TOUR_AGE = { mean: 127, sd: 41 } as const;

/** Relative error the tour (and its test) accepts between an op and its float64 twin. */
export const TOUR_TOLERANCE = 1e-4;

/** Batch-norm epsilon (the `batchNorm2d` default). */
const BN_EPS = 1e-5;

/** The radiograph a tour trains on: the model's square input as 8-bit gray. */
export interface TourImage {
  /** `size * size` bytes, prepared as the model reads them (`prepareRadiograph`). */
  pixels: Uint8Array;
  /** Side in pixels (the model's input size). */
  size: number;
  /** Where it came from, for the narration. */
  source: string;
  /** The generated subject, when the image is synthetic. */
  subject?: SynthSubject;
}

/**
 * A generated hand radiograph (`src/data/synth.ts`) as `deno task synth` renders it,
 * 256x256, with its subject (sex and bone-age label).
 */
export function syntheticRadiograph(
  seed = 0,
  index = 0,
): { gray: GrayImage; subject: SynthSubject; source: string } {
  const subject = sampleSubject(seed, index);
  const rand = mulberry32(parseInt(hashKey(`${seed}/${index}/render`).slice(0, 8), 16));
  const render = 256;
  const data = Uint8Array.from(
    renderHand(subject, { size: render, rand }),
    (v) => Math.round(v * 255),
  );
  return {
    gray: { width: render, height: render, data },
    subject,
    source: `generated hand (src/data/synth.ts, subject ${subject.id} of seed ${seed})`,
  };
}

/** {@link syntheticRadiograph} letterboxed to `size`: the tour's image when none is given. */
export function syntheticImage(size: number, seed = 0, index = 0): TourImage {
  const { gray, subject, source } = syntheticRadiograph(seed, index);
  return { pixels: letterbox(gray, size), size, source, subject };
}

/** Options of {@link runTour}. */
export interface TourOptions {
  /** Engine to run on (default: a new one, destroyed at the end). */
  engine?: Engine;
  /** Model configuration name (default "small"). */
  config?: string;
  /** The radiograph (default: {@link syntheticImage}). */
  image?: TourImage;
  /** 1 boy, 0 girl (default: the generated subject's sex, else required). */
  male?: 0 | 1;
  /** The bone age to train towards, months (default: the subject's label, else 127). */
  targetMonths?: number;
  /** Adam's learning rate (default 0.002, the `train` default). */
  lr?: number;
  /** Weight-initialization seed (default 1). */
  seed?: number;
  /** Run one untimed step on a throw-away copy first, so times exclude compiling (default true). */
  warmup?: boolean;
}

/** One kernel launch of an op. */
export interface TourDispatch {
  /** File under `kernels/`. */
  kernel: string;
  /** Entry point. */
  entryPoint: string;
  /** Workgroups dispatched in x, y, z. */
  workgroups: [number, number, number];
  /** `@workgroup_size` of the entry point, with override constants resolved. */
  workgroupSize: [number, number, number];
  /** Total invocations (workgroups times workgroup size). */
  invocations: number;
  /** GPU time in milliseconds (null when the adapter has no timestamp queries). */
  ms: number | null;
}

/** One GPU result compared with the float64 twin. */
export interface TourCheck {
  /** What was compared, e.g. "y" or "dL/dtrunk.0.weight". */
  name: string;
  /** Its shape. */
  shape: number[];
  /** A few values of the GPU result... */
  gpu: number[];
  /** ...and of the reference, at the same positions. */
  ref: number[];
  /** Flat positions of those values. */
  at: number[];
  /** `max |gpu - ref| / max |ref|` over the whole tensor (Infinity if the GPU wrote NaN). */
  relError: number;
}

/** One step of the tour: a forward op, the backward of one, or the optimizer update. */
export interface TourOp {
  /** Which pass. */
  stage: "forward" | "backward" | "update";
  /** Op name as recorded on the tape ("conv2d", "batchNorm2d", ...) or "adam". */
  op: string;
  /** Layer (`trunk.4`, `head.0`) or a role ("pool", "sex", "loss", "all parameters"). */
  layer: string;
  /** Hyper-parameters in a few words ("3x3, pad 1, 16 -> 32 channels"). */
  detail: string;
  /** The op's source file and its CPU twin's. */
  source: string;
  /** The twin, e.g. `src/ref/conv2d.ts`. */
  refSource: string;
  /** Named input shapes. */
  inputs: { name: string; shape: number[] }[];
  /** Named output shapes. */
  outputs: { name: string; shape: number[] }[];
  /** Kernel launches, in order. */
  dispatches: TourDispatch[];
  /** Floating-point operations (multiply and add counted separately), null if memory-bound. */
  flops: number | null;
  /** Bytes of the op's inputs and outputs: the least memory traffic it needs. */
  bytes: number;
  /** Summed GPU time of its dispatches (null without timestamp queries). */
  ms: number | null;
  /** Each output compared with the reference. */
  checks: TourCheck[];
}

/** Gradient and update of one parameter tensor. */
export interface TourParam {
  /** Checkpoint name. */
  name: string;
  /** Shape. */
  shape: number[];
  /** L2 norm of the gradient. */
  gradNorm: number;
  /** L2 norm of the weights before the step. */
  weightNorm: number;
  /** L2 norm of the change the step made. */
  updateNorm: number;
}

/** The Adam update of one chosen weight. */
export interface TourAdamExample {
  /** Parameter name. */
  name: string;
  /** Flat index inside it. */
  index: number;
  /** Value before the step. */
  before: number;
  /** Its gradient. */
  grad: number;
  /** Value after the GPU's update. */
  after: number;
  /** Value after the float64 Adam. */
  afterRef: number;
  /** Learning rate. */
  lr: number;
}

/** Pictures of the step (CPU copies), for {@link saveTourImages}. */
export interface TourPictures {
  /** Side of the input. */
  size: number;
  /** The normalized input as the model sees it, `size * size`. */
  input: Float32Array;
  /** dL/d(input), `size * size`. */
  inputGrad: Float32Array;
  /** Feature maps: NHWC `[1, h, w, c]` of the last ReLU of the first and last conv blocks. */
  features: { layer: string; h: number; w: number; c: number; data: Float32Array }[];
}

/** Everything the tour measured. */
export interface TourResult {
  /** Adapter description. */
  adapter: string;
  /** True on a CPU-backed adapter. */
  cpuAdapter: boolean;
  /** The convolution kernels that ran (the engine's `kernels`). */
  kernels: "rows" | "generic";
  /** The configuration. */
  config: ModelConfig;
  /** Trainable parameter count. */
  parameterCount: number;
  /** The image's description. */
  source: string;
  /** 1 boy, 0 girl. */
  male: 0 | 1;
  /** Pixel normalization (this image's own mean and std of `byte / 255`). */
  pixelMean: number;
  /** See pixelMean. */
  pixelStd: number;
  /** Target in months and normalized. */
  targetMonths: number;
  /** Learning rate. */
  lr: number;
  /** Whether a warm-up step ran before the timed one. */
  warmedUp: boolean;
  /** Every op of the step, in the order it was recorded. */
  ops: TourOp[];
  /** L1 loss on the GPU and from the twin (normalized units). */
  loss: number;
  /** See loss. */
  lossRef: number;
  /** Prediction in months (batch statistics) before and after the step. */
  monthsBefore: number;
  /** See monthsBefore. */
  monthsAfter: number;
  /**
   * |prediction of this tour's layer-by-layer forward - prediction of `BoneAgeNet.forward`|,
   * normalized units: 0 unless the two have drifted apart.
   */
  forwardMismatch: number;
  /** Gradient norms per parameter, in checkpoint order. */
  params: TourParam[];
  /** Adam's effect on one weight. */
  adam: TourAdamExample;
  /** Queue submits the recorded step took (1 unless something forced an early submit). */
  submits: number;
  /** Dispatches the step recorded. */
  dispatchCount: number;
  /** Pictures for `--save`. */
  pictures: TourPictures;
}

// ---- what each op is, in a line ---------------------------------------------------------

const GLOSS: Record<string, [forward: string, backward: string]> = {
  conv2d: [
    "each output = sum over a KxK window of every input channel times a weight",
    "dL/dx: dL/dy convolved with the flipped weights; dL/dw: x correlated with dL/dy",
  ],
  batchNorm2d: [
    "per channel: subtract the batch mean, divide by the batch std, * gamma + beta",
    "dx = gamma/std * (dy - mean(dy) - xhat * mean(dy * xhat)); dgamma, dbeta: sums",
  ],
  relu: ["max(x, 0), elementwise", "dy where x > 0, else 0"],
  elu: ["x if x > 0 else exp(x) - 1", "dy where x > 0, else dy * exp(x)"],
  maxPool2d: [
    "largest value of each window (its position is kept for backward)",
    "each dy goes back to the window position that held the maximum",
  ],
  globalAvgPool: [
    "mean of each channel over all pixels: [N,H,W,C] -> [N,C]",
    "dy / (H*W) to every pixel",
  ],
  reshape: ["flattens the feature maps (a copy)", "the same copy, back"],
  concatFeatures: [
    "appends the child's sex (1 boy, 0 girl) to the image features",
    "splits dy; the sex input needs no gradient, so only the image part is kept",
  ],
  linear: [
    "x @ w + b: each output is a weighted sum of all inputs",
    "dx = dy @ w^T, dw = x^T @ dy, db = sum of dy",
  ],
  l1Loss: [
    "mean |prediction - target| (standardized months)",
    "sign(pred - target) / n, times dL/dL = 1",
  ],
  adam: [
    "m = .9m + .1g, v = .999v + .001g^2, w -= lr * m_hat / (sqrt(v_hat) + eps)",
    "",
  ],
};

/** A one-line description of what an op computes. */
export function opGloss(op: string, stage: TourOp["stage"]): string {
  const g = GLOSS[op];
  if (!g) return "";
  return stage === "backward" ? g[1] : g[0];
}

const SOURCES: Record<string, [string, string]> = {
  conv2d: ["src/ops/conv2d.ts", "src/ref/conv2d.ts"],
  batchNorm2d: ["src/ops/batchnorm.ts", "src/ref/batchnorm.ts"],
  relu: ["src/ops/relu.ts", "src/ref/relu.ts"],
  elu: ["src/ops/elu.ts", "src/ref/elu.ts"],
  maxPool2d: ["src/ops/pool.ts", "src/ref/pool.ts"],
  globalAvgPool: ["src/ops/pool.ts", "src/ref/pool.ts"],
  reshape: ["src/ops/reshape.ts", "(identity)"],
  concatFeatures: ["src/ops/concat.ts", "src/ref/concat.ts"],
  linear: ["src/ops/linear.ts", "src/ref/linear.ts"],
  l1Loss: ["src/ops/loss.ts", "src/ref/loss.ts"],
  adam: ["src/optim.ts", "src/ref/optim.ts"],
};

// ---- comparing with the reference -------------------------------------------------------

/** `max |got - want| / max |want|` (Infinity if `got` has a non-finite value). */
export function relativeError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

function compare(
  name: string,
  shape: Shape,
  got: ArrayLike<number>,
  want: ArrayLike<number>,
): TourCheck {
  // Where the reference is largest, then three positions spread over the tensor.
  let big = 0;
  for (let i = 1; i < want.length; i++) if (Math.abs(want[i]) > Math.abs(want[big])) big = i;
  const n = want.length;
  const at = [...new Set([big, Math.floor(n / 4), Math.floor(n / 2), Math.floor((3 * n) / 4)])]
    .slice(0, 4);
  return {
    name,
    shape: [...shape],
    at,
    gpu: at.map((i) => got[i]),
    ref: at.map((i) => want[i]),
    relError: relativeError(got, want),
  };
}

// ---- the step ---------------------------------------------------------------------------

/** What the reference needs to know about one forward op. */
type OpMeta =
  | { kind: "conv2d"; g: refConv.ConvGeometry; hasBias: boolean }
  | { kind: "batchNorm2d"; M: number; C: number }
  | { kind: "relu" }
  | { kind: "elu" }
  | { kind: "maxPool2d"; N: number; H: number; W: number; C: number; K: number; S: number }
  | { kind: "globalAvgPool"; N: number; H: number; W: number; C: number }
  | { kind: "reshape" }
  | { kind: "concatFeatures"; N: number; A: number; B: number }
  | { kind: "linear"; N: number; In: number; Out: number }
  | { kind: "l1Loss" };

interface ForwardRecord {
  op: string;
  layer: string;
  detail: string;
  meta: OpMeta;
  inputs: Tensor[];
  inputNames: string[];
  output: Tensor;
  outputName: string;
  entry: TapeEntry | null;
  first: number;
  last: number;
  flops: number;
}

interface BackwardRecord {
  forward: ForwardRecord;
  dOutput: Tensor;
  grads: (Tensor | null)[];
  first: number;
  last: number;
}

interface RecordedStep {
  forward: ForwardRecord[];
  backward: BackwardRecord[];
  pred: Tensor;
  loss: Tensor;
  grads: Map<Tensor, Tensor>;
  updateFirst: number;
  updateLast: number;
}

/**
 * Records forward, backward and the Adam update of one step, op by op, noting which
 * dispatches (`count()` before and after) belong to which op. Mirrors `BoneAgeNet.forward`.
 */
function recordStep(
  e: Engine,
  model: BoneAgeNet,
  optimizer: Adam,
  x: Tensor,
  male: Tensor,
  target: Tensor,
  count: () => number,
): RecordedStep {
  const config = model.config;
  if (config.dropout > 0) {
    throw new Error(`tour: the ${config.name} model uses dropout, which the tour does not model`);
  }
  const named = new Map(model.namedTensors().map((n) => [n.name, n.tensor]));
  const param = (name: string) => {
    const t = named.get(name);
    if (!t) throw new Error(`tour: the model has no tensor ${name}`);
    return t;
  };
  const tapeStart = e.tape.entries.length;
  const forward: ForwardRecord[] = [];
  const push = (
    r: Omit<ForwardRecord, "entry" | "first" | "last" | "output"> & { run: () => Tensor },
  ) => {
    const first = count();
    const before = e.tape.entries.length;
    const output = r.run();
    const entry = e.tape.entries.length > before ? e.tape.entries[e.tape.entries.length - 1] : null;
    const { run: _run, ...rest } = r;
    forward.push({ ...rest, output, entry, first, last: count() });
    return output;
  };

  let act = x;
  let actName = "image";
  const plan = planLayers(config);
  for (const { name: layer, spec, input: [, h, w, c], window } of plan) {
    const input = act;
    const inName = actName;
    if (spec.type === "conv") {
      const weight = param(`${layer}.weight`);
      const bias = named.get(`${layer}.bias`) ?? null;
      const g = window!;
      act = push({
        op: "conv2d",
        layer,
        detail:
          `${spec.kernel}x${spec.kernel}, pad ${spec.padding}, ${c} -> ${spec.channels} channels` +
          (bias ? "" : ", no bias (BN follows)"),
        meta: { kind: "conv2d", g, hasBias: bias !== null },
        inputs: bias ? [input, weight, bias] : [input, weight],
        inputNames: bias ? [inName, weight.name!, bias.name!] : [inName, weight.name!],
        outputName: `${layer} out`,
        flops: convFlops(g),
        run: () => conv2d(input, weight, bias, { stride: 1, padding: spec.padding }),
      });
    } else if (spec.type === "bn") {
      const [gamma, beta] = [param(`${layer}.weight`), param(`${layer}.bias`)];
      const running = {
        mean: param(`${layer}.running_mean`),
        variance: param(`${layer}.running_var`),
      };
      act = push({
        op: "batchNorm2d",
        layer,
        detail: `batch statistics over ${h * w} values per channel`,
        meta: { kind: "batchNorm2d", M: h * w, C: c },
        inputs: [input, gamma, beta],
        inputNames: [inName, gamma.name!, beta.name!],
        outputName: `${layer} out`,
        flops: 0,
        run: () => batchNorm2d(input, gamma, beta, running, { training: true }),
      });
    } else if (spec.type === "relu" || spec.type === "elu") {
      const kind = spec.type;
      act = push({
        op: kind,
        layer,
        detail: "",
        meta: { kind },
        inputs: [input],
        inputNames: [inName],
        outputName: `${layer} out`,
        flops: 0,
        run: () => (kind === "relu" ? relu(input) : elu(input)),
      });
    } else {
      const { kernel: K, stride: S } = spec;
      const meta: OpMeta = { kind: "maxPool2d", N: 1, H: h, W: w, C: c, K, S };
      act = push({
        op: "maxPool2d",
        layer,
        detail: `${K}x${K} windows, stride ${S}`,
        meta,
        inputs: [input],
        inputNames: [inName],
        outputName: `${layer} out`,
        flops: 0,
        run: () => maxPool2d(input, { kernel: K, stride: S }),
      });
    }
    actName = `${layer} out`;
  }

  let features: number;
  {
    const input = act;
    const inName = actName;
    const [, h, w, c] = plan.at(-1)!.output;
    if (config.pool === "global-avg") {
      act = push({
        op: "globalAvgPool",
        layer: "pool",
        detail: `mean over ${h}x${w} pixels`,
        meta: { kind: "globalAvgPool", N: 1, H: h, W: w, C: c },
        inputs: [input],
        inputNames: [inName],
        outputName: "features",
        flops: 0,
        run: () => globalAvgPool(input),
      });
      features = c;
    } else {
      features = h * w * c;
      act = push({
        op: "reshape",
        layer: "flatten",
        detail: `[1, ${h}, ${w}, ${c}] -> [1, ${features}]`,
        meta: { kind: "reshape" },
        inputs: [input],
        inputNames: [inName],
        outputName: "features",
        flops: 0,
        run: () => reshape(input, [1, features]),
      });
    }
  }
  {
    const input = act;
    const A = features;
    act = push({
      op: "concatFeatures",
      layer: "sex",
      detail: `${A} image features + 1 sex feature`,
      meta: { kind: "concatFeatures", N: 1, A, B: 1 },
      inputs: [input, male],
      inputNames: ["features", "male"],
      outputName: "features+sex",
      flops: 0,
      run: () => concatFeatures(input, male),
    });
    features = A + 1;
    actName = "features+sex";
  }
  const widths = [...config.dense, 1];
  widths.forEach((out, i) => {
    const layer = headLayer(config, i);
    const input = act;
    const inName = actName;
    const [weight, bias] = [param(`${layer}.weight`), param(`${layer}.bias`)];
    const In = features;
    act = push({
      op: "linear",
      layer,
      detail: `${In} -> ${out}` + (i === widths.length - 1 ? " (the prediction)" : ""),
      meta: { kind: "linear", N: 1, In, Out: out },
      inputs: [input, weight, bias],
      inputNames: [inName, weight.name!, bias.name!],
      outputName: `${layer} out`,
      flops: 2 * In * out,
      run: () => linear(input, weight, bias),
    });
    actName = `${layer} out`;
    features = out;
    if (i < widths.length - 1) {
      const pre = act;
      const kind = config.activation;
      act = push({
        op: kind,
        layer: `${layer} act`,
        detail: "",
        meta: { kind },
        inputs: [pre],
        inputNames: [actName],
        outputName: `${layer} act out`,
        flops: 0,
        run: () => (kind === "relu" ? relu(pre) : elu(pre)),
      });
      actName = `${layer} act out`;
    }
  });
  const pred = act;
  const loss = push({
    op: "l1Loss",
    layer: "loss",
    detail: "against the target bone age",
    meta: { kind: "l1Loss" },
    inputs: [pred, target],
    inputNames: ["prediction", "target"],
    outputName: "loss",
    flops: 0,
    run: () => l1Loss(pred, target),
  });

  // Backward: what Tape.gradients does, one entry at a time.
  const entries = e.tape.entries.splice(tapeStart);
  const byEntry = new Map(forward.filter((r) => r.entry).map((r) => [r.entry!, r]));
  const backward: BackwardRecord[] = [];
  const grads = new Map<Tensor, Tensor>();
  e.noGrad(() => {
    let first = count();
    grads.set(loss, e.full(loss.shape, 1, "dL/dL"));
    for (let k = entries.length - 1; k >= 0; k--) {
      const entry = entries[k];
      const record = byEntry.get(entry);
      if (!record) throw new Error(`tour: tape entry ${entry.op} was not recorded by the tour`);
      const dOutput = grads.get(entry.output);
      if (!dOutput) throw new Error(`tour: ${entry.op} ${record.layer} received no gradient`);
      const needs = entry.inputs.map((t) => t.requiresGrad);
      const dInputs = entry.backward(dOutput, needs);
      const kept: (Tensor | null)[] = [];
      entry.inputs.forEach((input, i) => {
        const g = needs[i] ? dInputs[i] : null;
        kept.push(g);
        if (!needs[i]) return;
        if (!g) throw new Error(`tour: ${entry.op} returned no gradient for input ${i}`);
        const previous = grads.get(input);
        grads.set(input, previous ? e.add(previous, g) : g);
      });
      backward.push({ forward: record, dOutput, grads: kept, first, last: count() });
      first = count();
    }
  });
  const paramGrads = new Map(model.parameters().map((p) => [p, grads.get(p)!]));
  const updateFirst = count();
  optimizer.step(paramGrads);
  return { forward, backward, pred, loss, grads, updateFirst, updateLast: count() };
}

/** Every tensor inside a recorded step, for disposing it. */
function stepTensors(step: RecordedStep): Set<Tensor> {
  const all = new Set<Tensor>([step.pred, step.loss, ...step.grads.values()]);
  for (const r of step.forward) all.add(r.output);
  for (const r of step.backward) {
    all.add(r.dOutput);
    r.grads.forEach((g) => g && all.add(g));
  }
  return all;
}

// ---- references of each op --------------------------------------------------------------

type F64 = Float64Array;

function refForward(meta: OpMeta, v: F64[]): F64 {
  switch (meta.kind) {
    case "conv2d":
      return refConv.conv2dForward(v[0], v[1], meta.hasBias ? v[2] : null, meta.g);
    case "batchNorm2d":
      return refBn.batchNormTrainForward(v[0], meta.M, meta.C, v[1], v[2], BN_EPS).y;
    case "relu":
      return refRelu.reluForward(v[0]);
    case "elu":
      return refElu.eluForward(v[0]);
    case "maxPool2d":
      return refPool.maxPool2dForward(v[0], meta.N, meta.H, meta.W, meta.C, meta.K, meta.S).y;
    case "globalAvgPool":
      return refPool.globalAvgPoolForward(v[0], meta.N, meta.H, meta.W, meta.C);
    case "reshape":
      return v[0].slice();
    case "concatFeatures":
      return refConcat.concatForward(v[0], v[1], meta.N, meta.A, meta.B);
    case "linear":
      return refLinear.linearForward(v[0], v[1], v[2], meta.N, meta.In, meta.Out);
    case "l1Loss":
      return Float64Array.of(refLoss.lossForward("l1", v[0], v[1]));
  }
}

/** Reference gradients of each input (null where the GPU computed none). */
function refBackward(meta: OpMeta, v: F64[], dy: F64, needs: boolean[]): (F64 | null)[] {
  const only = (gs: F64[]) => gs.map((g, i) => (needs[i] ? g : null));
  switch (meta.kind) {
    case "conv2d":
      // Only what the GPU computed (the image's own conv needs no data gradient unless asked).
      return [
        needs[0] ? refConv.conv2dBackwardData(dy, v[1], meta.g) : null,
        needs[1] ? refConv.conv2dBackwardWeight(v[0], dy, meta.g) : null,
        ...(meta.hasBias ? [needs[2] ? refConv.conv2dBackwardBias(dy, meta.g) : null] : []),
      ];
    case "batchNorm2d": {
      const r = refBn.batchNormTrainBackward(dy, v[0], meta.M, meta.C, v[1], BN_EPS);
      return only([r.dx, r.dgamma, r.dbeta]);
    }
    case "relu":
      return [refRelu.reluBackward(v[0], dy)];
    case "elu":
      return [refElu.eluBackward(v[0], dy)];
    case "maxPool2d": {
      const { N, H, W, C, K, S } = meta;
      const { argmax } = refPool.maxPool2dForward(v[0], N, H, W, C, K, S);
      return [refPool.maxPool2dBackward(dy, argmax, N, H, W, C, K, S)];
    }
    case "globalAvgPool":
      return [refPool.globalAvgPoolBackward(dy, meta.N, meta.H, meta.W, meta.C)];
    case "reshape":
      return [dy.slice()];
    case "concatFeatures": {
      const r = refConcat.concatBackward(dy, meta.N, meta.A, meta.B);
      return only([r.da, r.db]);
    }
    case "linear": {
      const r = refLinear.linearBackward(v[0], v[1], dy, meta.N, meta.In, meta.Out);
      return only([r.dx, r.dw, r.db]);
    }
    case "l1Loss": {
      const g = refLoss.lossBackward("l1", v[0], v[1], dy[0]);
      return only([g, g.map((x) => -x)]);
    }
  }
}

// ---- running it -------------------------------------------------------------------------

function meanStd(pixels: Uint8Array): { mean: number; std: number } {
  let sum = 0, sq = 0;
  for (const p of pixels) {
    sum += p / 255;
    sq += (p / 255) ** 2;
  }
  const mean = sum / pixels.length;
  const std = Math.sqrt(Math.max(0, sq / pixels.length - mean * mean));
  return { mean, std: std > 1e-6 ? std : 1 };
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/**
 * Runs one training step of `options.config` (default `small`) on one radiograph with a batch
 * of one, narrating nothing: returns every op with its kernels, dispatch sizes, GPU times and
 * the comparison with its float64 twin, plus the loss, gradient norms, an Adam example and
 * the prediction before and after. See the module doc.
 */
export async function runTour(options: TourOptions = {}): Promise<TourResult> {
  const config = getConfig(options.config ?? "small");
  if (config.inputHeight !== config.inputWidth) {
    throw new Error(`tour: the ${config.name} model's input is not square`);
  }
  const size = config.inputHeight;
  const image = options.image ?? syntheticImage(size);
  if (image.size !== size || image.pixels.length !== size * size) {
    throw new Error(
      `tour: the image is ${image.size}x${image.size}, the model wants ${size}x${size}`,
    );
  }
  const male = options.male ?? image.subject?.male;
  if (male === undefined) throw new Error("tour: the child's sex is needed for a real image");
  const targetMonths = options.targetMonths ?? image.subject?.boneage ?? TOUR_AGE.mean;
  const lr = options.lr ?? 0.002;
  const seed = options.seed ?? 1;
  const warmup = options.warmup ?? true;
  const ownEngine = !options.engine;
  const e = options.engine ?? await Engine.create();
  const owned: Tensor[] = [];
  const cleanup: (() => void)[] = [];
  try {
    const { mean: pixelMean, std: pixelStd } = meanStd(image.pixels);
    const input = Float32Array.from(image.pixels, (p) => (p / 255 - pixelMean) / pixelStd);
    const targetNorm = (targetMonths - TOUR_AGE.mean) / TOUR_AGE.sd;
    const x = e.tensor(input, [1, size, size, 1], "image");
    x.requiresGrad = true; // so backward computes dL/d(image), for the saliency picture
    const maleT = e.tensor([male], [1, 1], "male");
    const target = e.tensor([targetNorm], [1, 1], "target");
    owned.push(x, maleT, target);

    // Programs as they are recorded (works with or without timestamp queries).
    const programs: Program[] = [];
    e.onDispatch = (program) => programs.push(program);
    const count = () => programs.length;

    if (warmup) {
      const spare = new BoneAgeNet(e, config, seed + 1);
      const spareAdam = new Adam(e, spare.parameters(), { lr });
      const s = e.tidy(() => recordStep(e, spare, spareAdam, x, maleT, target, count));
      stepTensors(s).forEach((t) => t.dispose());
      spareAdam.dispose();
      spare.namedTensors().forEach((n) => n.tensor.dispose());
      await e.sync();
    }

    const model = new BoneAgeNet(e, config, seed);
    const optimizer = new Adam(e, model.parameters(), { lr });
    cleanup.push(() => {
      optimizer.dispose();
      model.namedTensors().forEach((n) => n.tensor.dispose());
    });
    const before = new Map<Tensor, Float64Array>();
    for (const { tensor } of model.namedTensors()) {
      before.set(tensor, Float64Array.from(await tensor.read()));
    }
    // BoneAgeNet's own forward (batch statistics, not recorded): the tour's must agree.
    const modelPred = e.noGrad(() => e.tidy(() => model.forward(x, maleT, true)));
    const modelPredValue = (await modelPred.read())[0];
    modelPred.dispose();

    const profiling = e.device.features.has("timestamp-query");
    programs.length = 0;
    const submits0 = e.stats.submits;
    if (profiling) e.startProfile();
    const step = e.tidy(() => recordStep(e, model, optimizer, x, maleT, target, count));
    // Submits the step (stopProfile adds the copy of the timestamps to the same submit).
    const timed = profiling ? await e.stopProfile() : (e.flush(), null);
    const submits = e.stats.submits - submits0;
    e.onDispatch = null;
    await e.sync();
    if (timed && timed.length !== programs.length) {
      throw new Error(`tour: ${timed.length} timed dispatches for ${programs.length} recorded`);
    }
    owned.push(...stepTensors(step));

    const cache = new Map<Tensor, Float64Array>();
    const value = async (t: Tensor) => {
      let v = before.get(t) ?? cache.get(t);
      if (!v) cache.set(t, v = Float64Array.from(await t.read()));
      return v;
    };
    const dispatches = (first: number, last: number): TourDispatch[] =>
      programs.slice(first, last).map((p, k) => {
        const workgroups = [p.dispatch[0], p.dispatch[1] ?? 1, p.dispatch[2] ?? 1] as [
          number,
          number,
          number,
        ];
        const workgroupSize = e.workgroupSize(p);
        return {
          kernel: p.kernel,
          entryPoint: p.entryPoint ?? "main",
          workgroups,
          workgroupSize,
          invocations: workgroups.reduce((a, b) => a * b, 1) *
            workgroupSize.reduce((a, b) => a * b, 1),
          ms: timed ? timed[first + k].ms : null,
        };
      });
    const sumMs = (ds: TourDispatch[]) => (timed ? ds.reduce((a, d) => a + d.ms!, 0) : null);
    const shapeOf = (t: Tensor) => [...t.shape];
    // What a forward op and its backward share: the op, its layer and where its code lives.
    const about = (r: ForwardRecord) => ({
      op: r.op,
      layer: r.layer,
      detail: r.detail,
      source: SOURCES[r.op][0],
      refSource: SOURCES[r.op][1],
    });
    const ops: TourOp[] = [];

    for (const r of step.forward) {
      const inputs = await Promise.all(r.inputs.map(value));
      const want = refForward(r.meta, inputs);
      const got = await value(r.output);
      const ds = dispatches(r.first, r.last);
      ops.push({
        stage: "forward",
        ...about(r),
        inputs: r.inputs.map((t, i) => ({ name: r.inputNames[i], shape: shapeOf(t) })),
        outputs: [{ name: r.outputName, shape: shapeOf(r.output) }],
        dispatches: ds,
        flops: r.flops || null,
        bytes: 4 * (r.inputs.reduce((a, t) => a + t.size, 0) + r.output.size),
        ms: sumMs(ds),
        checks: [compare(r.outputName, r.output.shape, got, want)],
      });
    }
    for (const b of step.backward) {
      const r = b.forward;
      const inputs = await Promise.all(r.inputs.map(value));
      const dy = await value(b.dOutput);
      const needs = b.grads.map((g) => g !== null);
      const want = refBackward(r.meta, inputs, dy, needs);
      const checks: TourCheck[] = [];
      const outputs: TourOp["outputs"] = [];
      for (let i = 0; i < b.grads.length; i++) {
        const g = b.grads[i];
        if (!g) continue;
        const name = `dL/d(${r.inputNames[i]})`;
        outputs.push({ name, shape: shapeOf(g) });
        checks.push(compare(name, g.shape, await value(g), want[i]!));
      }
      // Both gradients of a conv or linear layer cost its forward's FLOPs each.
      const flops = r.meta.kind === "conv2d" || r.meta.kind === "linear"
        ? r.flops * (needs[0] ? 2 : 1)
        : null;
      const ds = dispatches(b.first, b.last);
      ops.push({
        stage: "backward",
        ...about(r),
        inputs: [
          { name: `dL/d(${r.outputName})`, shape: shapeOf(b.dOutput) },
          ...r.inputs.map((t, i) => ({ name: r.inputNames[i], shape: shapeOf(t) }))
            .filter((_, i) => r.meta.kind !== "l1Loss" || i === 0),
        ],
        outputs,
        dispatches: ds,
        flops,
        bytes: 4 * (b.dOutput.size + r.inputs.reduce((a, t) => a + t.size, 0) +
          b.grads.reduce((a, g) => a + (g?.size ?? 0), 0)),
        ms: sumMs(ds),
        checks,
      });
    }

    // The update: every parameter against a float64 Adam fed the GPU's gradients.
    const params: TourParam[] = [];
    const adamChecks: TourCheck[] = [];
    let example: TourAdamExample | null = null;
    const outName = `${headLayer(config, config.dense.length)}.weight`;
    for (const p of model.parameters()) {
      const g = await value(step.grads.get(p)!);
      const w0 = before.get(p)!;
      const after = Float64Array.from(await p.read());
      const adamRef = new AdamRef([w0], { lr });
      adamRef.step([g]);
      adamChecks.push(compare(p.name!, p.shape, after, adamRef.params[0]));
      const delta = after.map((v, i) => v - w0[i]);
      params.push({
        name: p.name!,
        shape: shapeOf(p),
        gradNorm: norm(g),
        weightNorm: norm(w0),
        updateNorm: norm(delta),
      });
      if (p.name === outName) {
        let k = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[k])) k = i;
        example = {
          name: p.name,
          index: k,
          before: w0[k],
          grad: g[k],
          after: after[k],
          afterRef: adamRef.params[0][k],
          lr,
        };
      }
    }
    const upd = dispatches(step.updateFirst, step.updateLast);
    const totalParams = model.parameters().reduce((a, p) => a + p.size, 0);
    ops.push({
      stage: "update",
      op: "adam",
      layer: "all parameters",
      detail: `lr ${lr}, one dispatch per parameter tensor`,
      source: SOURCES.adam[0],
      refSource: SOURCES.adam[1],
      inputs: [{ name: "gradients", shape: [totalParams] }],
      outputs: [{ name: "parameters, m, v (in place)", shape: [totalParams] }],
      dispatches: upd,
      flops: null,
      bytes: 4 * 6 * totalParams,
      ms: sumMs(upd),
      checks: adamChecks,
    });

    const loss = (await step.loss.read())[0];
    const lossOp = ops.find((o) => o.stage === "forward" && o.op === "l1Loss")!;
    const predBefore = (await step.pred.read())[0];
    const after = e.noGrad(() => e.tidy(() => model.forward(x, maleT, true)));
    const predAfter = (await after.read())[0];
    after.dispose();

    const featureOf = async (layer: string) => {
      const r = step.forward.find((f) => f.layer === layer)!;
      const [, h, w, c] = r.output.shape;
      return { layer, h, w, c, data: Float32Array.from(await value(r.output)) };
    };
    // The last ReLU before each max-pool: the first block's and the last block's.
    const poolAt = config.trunk.flatMap((s, i) => (s.type === "maxpool" ? [i] : []));
    const features = [];
    for (const i of [poolAt[0], poolAt[poolAt.length - 1]]) {
      if (i !== undefined && i > 0) features.push(await featureOf(`trunk.${i - 1}`));
    }
    const inputGrad = step.grads.get(x);
    const pictures: TourPictures = {
      size,
      input,
      inputGrad: inputGrad ? await inputGrad.read() : new Float32Array(size * size),
      features,
    };

    return {
      adapter: e.info.description,
      cpuAdapter: e.info.isFallback,
      kernels: e.kernels,
      config,
      parameterCount: totalParams,
      source: image.source,
      male,
      pixelMean,
      pixelStd,
      targetMonths,
      lr,
      warmedUp: warmup,
      ops,
      loss,
      lossRef: lossOp.checks[0].ref[0],
      monthsBefore: TOUR_AGE.mean + TOUR_AGE.sd * predBefore,
      monthsAfter: TOUR_AGE.mean + TOUR_AGE.sd * predAfter,
      forwardMismatch: Math.abs(predBefore - modelPredValue),
      params,
      adam: example!,
      submits,
      dispatchCount: programs.length,
      pictures,
    };
  } finally {
    e.onDispatch = null;
    if (ownEngine) e.destroy();
    else {
      owned.forEach((t) => t.dispose());
      cleanup.forEach((f) => f());
    }
  }
}

// ---- narration --------------------------------------------------------------------------

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s);
const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;
const int = (n: number) => n.toLocaleString("en-US");

/** `prefix` + items joined by ", ", wrapped under 100 columns with a hanging indent. */
function wrap(prefix: string, items: string[], sep = ", "): string[] {
  const lines: string[] = [];
  let line = prefix;
  items.forEach((item, i) => {
    const piece = item + (i < items.length - 1 ? sep.trimEnd() : "");
    if (line.length > prefix.length && line.length + 1 + piece.length > 99) {
      lines.push(line);
      line = " ".repeat(prefix.length) + piece;
    } else line += (line.length > prefix.length ? " " : "") + piece;
  });
  lines.push(line);
  return lines;
}

/** Workgroup size as `64` or `8x8x1`. */
const wgText = (s: readonly number[]) => (s[1] === 1 && s[2] === 1 ? String(s[0]) : s.join("x"));

/** `2.65 MFLOP`, `147 kB` style. */
function si(n: number, unit: string): string {
  const steps: [number, string][] = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, p] of steps) if (n >= f) return `${(n / f).toPrecision(3)} ${p}${unit}`;
  return `${n} ${unit}`;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(6) : v.toExponential(4);
}

function ms(v: number | null): string {
  return v === null ? "-" : v.toFixed(3);
}

function verdict(err: number): string {
  return err <= TOUR_TOLERANCE ? "ok" : "MISMATCH";
}

/** Dispatch rows; a run of 4 or more of the same kernel shrinks to one line. */
function dispatchRows(ds: TourDispatch[]): string[] {
  const rows: string[] = [];
  for (let i = 0; i < ds.length;) {
    let j = i;
    while (j < ds.length && ds[j].kernel === ds[i].kernel) j++;
    const d = ds[i];
    const kernel = pad(d.kernel, 37) + pad(d.entryPoint, 6);
    if (j - i >= 4) {
      const inv = ds.slice(i, j).reduce((a, x) => a + x.invocations, 0);
      const t = d.ms === null ? null : ds.slice(i, j).reduce((a, x) => a + x.ms!, 0);
      rows.push(
        `    ${kernel}${pad(`${j - i} dispatches x ${wgText(d.workgroupSize)}`, 28)}` +
          `${lpad(int(inv), 12)}${lpad(ms(t), 10)}`,
      );
      i = j;
      continue;
    }
    for (let k = i; k < j; k++) {
      const x = ds[k];
      const size = `[${x.workgroups.join(",")}] x ${wgText(x.workgroupSize)}`;
      rows.push(
        `    ${pad(x.kernel, 37)}${pad(x.entryPoint, 6)}${pad(size, 28)}` +
          `${lpad(int(x.invocations), 12)}${lpad(ms(x.ms), 10)}`,
      );
    }
    i = j;
  }
  return rows;
}

function checkRows(c: TourCheck): string[] {
  const vals = (v: number[]) => v.map((x) => lpad(num(x), 13)).join("");
  return [
    `    ${pad(c.name, 34)}${pad(shapeText(c.shape), 20)}err ${c.relError.toExponential(1)}  ` +
    verdict(c.relError),
    `      GPU ${vals(c.gpu)}`,
    `      f64 ${vals(c.ref)}`,
  ];
}

/** The narration of one op: a compact table that fits 100 columns. */
export function formatOp(
  op: TourOp,
  n: number,
  total: number,
  withGloss: boolean,
  example = "",
): string[] {
  const title = `-- ${n}/${total} ${op.stage} ${op.op} ${op.layer}` +
    (op.detail ? `: ${op.detail}` : "");
  const lines = [`${title} ${"-".repeat(Math.max(2, 97 - title.length))}`];
  if (withGloss) lines.push(`    what: ${opGloss(op.op, op.stage)}`);
  if (withGloss && op.dispatches.some((d) => d.kernel.startsWith("generated/conv2d_rows"))) {
    lines.push(
      "    note: on a CPU adapter each invocation of a rows kernel computes whole output rows:",
      "          few, fat invocations (src/ops/conv2d_kernels.ts explains why)",
    );
  }
  lines.push(`    code: ${op.source}, kernels below; CPU twin: ${op.refSource}`);
  lines.push(...wrap("    in:  ", op.inputs.map((x) => `${x.name} ${shapeText(x.shape)}`)));
  lines.push(...wrap("    out: ", op.outputs.map((x) => `${x.name} ${shapeText(x.shape)}`)));
  const work = op.flops !== null
    ? si(op.flops, "FLOP")
    : `- FLOP (memory-bound, ${si(op.bytes, "B")} in+out)`;
  lines.push(
    `    work: ${work}; GPU ${ms(op.ms)} ms in ${op.dispatches.length} dispatch` +
      (op.dispatches.length === 1 ? "" : "es"),
  );
  lines.push(
    `    ${pad("kernel", 37)}${pad("entry", 6)}${pad("workgroups x workgroup size", 28)}` +
      `${lpad("invocations", 12)}${lpad("ms", 10)}`,
  );
  lines.push(...dispatchRows(op.dispatches));
  if (op.checks.length <= 3) {
    for (const c of op.checks) lines.push(...checkRows(c));
  } else {
    const worst = op.checks.reduce((a, c) => (c.relError > a.relError ? c : a));
    const shown = op.checks.find((c) => c.name === example) ?? op.checks[0];
    lines.push(...checkRows(shown));
    lines.push(
      `    ... ${op.checks.length} tensors checked, worst ${worst.name} err ` +
        `${worst.relError.toExponential(1)}  ${verdict(worst.relError)}`,
    );
  }
  return lines;
}

/** The whole narration, line by line (each under 100 columns). */
export function formatTour(r: TourResult): string[] {
  const ageNorm = (r.targetMonths - TOUR_AGE.mean) / TOUR_AGE.sd;
  const timed = r.ops.some((o) => o.ms !== null);
  const out: string[] = [
    `One training step of the "${r.config.name}" bone-age CNN, taken apart`,
    `  adapter: ${r.adapter}${
      r.cpuAdapter ? " (runs on the CPU)" : ""
    }, ${r.kernels} convolution kernels`,
    `  model:   ${r.config.inputHeight}x${r.config.inputWidth} input, ` +
    `${r.config.trunk.filter((s) => s.type === "conv").length} convolutions, ` +
    `${int(r.parameterCount)} trainable parameters (src/models.ts, src/nn.ts)`,
    ...wrap("  image:   ", r.source.split(" "), " "),
    `  sex:     ${r.male ? "M (boy), fed to the head as 1" : "F (girl), fed to the head as 0"}`,
    `  target:  ${r.targetMonths} months -> (${r.targetMonths} - ${TOUR_AGE.mean}) / ${TOUR_AGE.sd} = ` +
    `${ageNorm.toFixed(4)} (bone ages are standardized)`,
    `  pixels:  (byte / 255 - ${r.pixelMean.toFixed(4)}) / ${r.pixelStd.toFixed(4)} ` +
    "(this image's own mean and std)",
    `  step:    a batch of 1 image, L1 loss, Adam with lr ${r.lr}`,
    timed
      ? "  times:   GPU clock (timestamp queries), each dispatch in its own timed pass" +
        (r.warmedUp ? "," : "")
      : "  times:   - (this adapter has no timestamp queries)",
    ...(timed && r.warmedUp
      ? ["           after one untimed warm-up step (so pipeline compilation is not counted)"]
      : []),
    "  checks:  each op's GPU inputs were read back and fed to its float64 twin in src/ref/;",
    `           err = max|GPU - f64| / max|f64| over the whole tensor, ok when <= ${TOUR_TOLERANCE};`,
    "           values shown: at the largest |f64|, then 1/4, 1/2 and 3/4 of the way through",
    "",
  ];
  const seen = new Set<string>();
  r.ops.forEach((op, i) => {
    if (i === 0 || r.ops[i - 1].stage !== op.stage) {
      out.push(
        op.stage === "forward"
          ? "FORWARD: image -> prediction -> loss (layer by layer, as BoneAgeNet.forward)"
          : op.stage === "backward"
          ? "BACKWARD: the tape (src/autograd.ts) walked from the end; each entry's backward"
          : "UPDATE: Adam (src/optim.ts, kernels/adam.wgsl)",
        "",
      );
    }
    const key = `${op.stage}:${op.op}`;
    out.push(...formatOp(op, i + 1, r.ops.length, !seen.has(key), r.adam.name), "");
    seen.add(key);
  });

  const worst = r.ops.flatMap((o) => o.checks.map((c) => ({ o, c })))
    .reduce((a, b) => (b.c.relError > a.c.relError ? b : a));
  const stageMs = (s: TourOp["stage"]) =>
    r.ops.filter((o) => o.stage === s).reduce((a, o) => a + (o.ms ?? 0), 0);
  const checks = r.ops.reduce((a, o) => a + o.checks.length, 0);
  const mism = r.ops.reduce(
    (a, o) => a + o.checks.filter((c) => !(c.relError <= TOUR_TOLERANCE)).length,
    0,
  );
  out.push(
    "SUMMARY",
    `  loss (L1, standardized): GPU ${r.loss.toFixed(6)}, f64 ${r.lossRef.toFixed(6)} ` +
      `= ${(r.loss * TOUR_AGE.sd).toFixed(1)} months off`,
    `  checked ${checks} tensors of ${r.ops.length} ops against float64: ` +
      (mism ? `${mism} MISMATCH` : "all ok"),
    `    worst err ${worst.c.relError.toExponential(1)}: ${worst.o.stage} ${worst.o.op} ` +
      `${worst.o.layer}, ${worst.c.name}`,
    `  GPU time: forward ${stageMs("forward").toFixed(2)} ms, backward ${
      stageMs("backward").toFixed(2)
    } ms, ` +
      `update ${
        stageMs("update").toFixed(2)
      } ms; ${r.dispatchCount} dispatches, ${r.submits} submit` +
      (r.submits === 1 ? "" : "s"),
    `  the layer-by-layer forward and BoneAgeNet.forward agree to ${
      r.forwardMismatch.toExponential(1)
    }`,
    "",
    "  gradient norm per parameter (|g|), weights (|w|) and the step's change (|dw|):",
    `    ${pad("parameter", 24)}${pad("shape", 20)}${lpad("|g|", 12)}${lpad("|w|", 12)}${
      lpad("|dw|", 12)
    }`,
  );
  for (const p of r.params) {
    out.push(
      `    ${pad(p.name, 24)}${pad(shapeText(p.shape), 20)}${lpad(num(p.gradNorm), 12)}` +
        `${lpad(num(p.weightNorm), 12)}${lpad(num(p.updateNorm), 12)}`,
    );
  }
  const a = r.adam;
  out.push(
    "",
    `  Adam on ${a.name}[${a.index}] (the output layer's weight with the largest gradient):`,
    `    before ${num(a.before)}, gradient ${num(a.grad)}, after ${num(a.after)} ` +
      `(f64 Adam: ${num(a.afterRef)})`,
    `    moved ${num(a.after - a.before)}: on its first step Adam moves every weight by about ` +
      `lr = ${a.lr},`,
    "    against the sign of its gradient (m_hat / sqrt(v_hat) = g / |g|)",
    "",
    `  predicted bone age: ${r.monthsBefore.toFixed(1)} months before the step, ` +
      `${r.monthsAfter.toFixed(1)} after (target ${r.targetMonths})`,
    "  (batch statistics, as in training; with one image a step moves it far, even past the target)",
  );
  return out;
}

// ---- pictures ---------------------------------------------------------------------------

function upscale(src: ArrayLike<number>, w: number, h: number, k: number): Uint8Array {
  const out = new Uint8Array(w * k * h * k);
  for (let y = 0; y < h * k; y++) {
    for (let x = 0; x < w * k; x++) {
      out[y * w * k + x] = src[Math.floor(y / k) * w + Math.floor(x / k)];
    }
  }
  return out;
}

function toBytes(v: ArrayLike<number>, lo: number, hi: number): Uint8Array {
  const out = new Uint8Array(v.length);
  const span = hi - lo || 1;
  for (let i = 0; i < v.length; i++) {
    out[i] = Math.max(0, Math.min(255, Math.round(((v[i] - lo) / span) * 255)));
  }
  return out;
}

/** Up to 8 channels of an NHWC map (the most active ones), tiled 4 x 2, each scaled to 0..255. */
function featureGrid(f: TourPictures["features"][number]): { png: Uint8Array; channels: number[] } {
  const { h, w, c, data } = f;
  const mean = Array.from({ length: c }, (_, ch) => {
    let s = 0;
    for (let p = 0; p < h * w; p++) s += data[p * c + ch];
    return s / (h * w);
  });
  const channels = [...mean.keys()].sort((a, b) => mean[b] - mean[a]).slice(0, 8);
  const k = Math.max(1, Math.round(96 / h));
  const [tw, th, gap] = [w * k, h * k, 2];
  const cols = Math.min(4, channels.length), rows = Math.ceil(channels.length / cols);
  const W = cols * tw + (cols - 1) * gap, H = rows * th + (rows - 1) * gap;
  const img = new Uint8Array(W * H).fill(64);
  channels.forEach((ch, t) => {
    const plane = Array.from({ length: h * w }, (_, p) => data[p * c + ch]);
    const max = Math.max(...plane, 1e-12);
    const tile = upscale(toBytes(plane, 0, max), w, h, k);
    const ox = (t % cols) * (tw + gap), oy = Math.floor(t / cols) * (th + gap);
    for (let y = 0; y < th; y++) img.set(tile.subarray(y * tw, (y + 1) * tw), (oy + y) * W + ox);
  });
  return { png: encodeGrayPng(img, W, H), channels };
}

/**
 * Writes `input.png` (the normalized input as the model sees it), one feature-map grid per
 * block (`features_trunk.N.png`) and `input_gradient.png` (dL/d(input): red where raising a
 * pixel raises the loss, blue where it lowers it, over the dimmed input) into `dir`.
 * Returns the files written with a description each.
 */
export async function saveTourImages(
  r: TourResult,
  dir: string,
): Promise<{ file: string; what: string }[]> {
  await Deno.mkdir(dir, { recursive: true });
  const { size, input, inputGrad } = r.pictures;
  const k = 3;
  const written: { file: string; what: string }[] = [];
  const save = async (name: string, bytes: Uint8Array, what: string) => {
    const file = `${dir.replace(/\/+$/, "")}/${name}`;
    await Deno.writeFile(file, bytes);
    written.push({ file, what });
  };
  let lo = Infinity, hi = -Infinity;
  for (const v of input) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const gray = toBytes(input, lo, hi);
  await save(
    "input.png",
    encodeGrayPng(upscale(gray, size, size, k), size * k, size * k),
    `the input as the model sees it (${size}x${size}, shown x${k}; black ${lo.toFixed(2)}, white ${
      hi.toFixed(2)
    })`,
  );
  for (const f of r.pictures.features) {
    const { png, channels } = featureGrid(f);
    await save(
      `features_${f.layer}.png`,
      png,
      `${channels.length} most active of ${f.c} channels after ${f.layer} (ReLU, ${f.h}x${f.w}): ` +
        channels.join(", "),
    );
  }
  const sorted = Float64Array.from(inputGrad, Math.abs).sort();
  const scale = sorted[Math.floor(sorted.length * 0.99)] || sorted[sorted.length - 1] || 1;
  const S = size * k;
  const rgb = new Uint8Array(S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const i = Math.floor(y / k) * size + Math.floor(x / k);
      const base = gray[i] * 0.35;
      const t = Math.max(-1, Math.min(1, inputGrad[i] / scale));
      const o = (y * S + x) * 3;
      rgb[o] = Math.round(Math.min(255, base + (t > 0 ? 255 * t : 0)));
      rgb[o + 1] = Math.round(base * (1 - Math.abs(t)));
      rgb[o + 2] = Math.round(Math.min(255, base + (t < 0 ? -255 * t : 0)));
    }
  }
  await save(
    "input_gradient.png",
    encodeRgbPng(rgb, S, S),
    "dL/d(input): red where a brighter pixel would raise the loss, blue where it would lower it",
  );
  return written;
}
