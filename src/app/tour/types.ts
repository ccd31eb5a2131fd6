/**
 * What a tour returns: every op of one training step with its kernels, dispatch sizes, GPU
 * times and its comparison with the float64 twin, and the step's loss, gradients and update.
 *
 * @module
 */

import type { SynthSubject } from "../../data/synth.ts";
import type { Engine } from "../../engine/engine.ts";
import type { ModelConfig } from "../../model/configs.ts";

/** Bone-age normalization used by the tour: months = 127 + 41 * output. */
export const TOUR_AGE = { mean: 127, sd: 41 } as const;

/** Relative error the tour (and its test) accepts between an op and its float64 twin. */
export const TOUR_TOLERANCE = 1e-4;

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
