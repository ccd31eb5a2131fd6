/**
 * Data augmentation on the GPU: random per-image affine warps and photometric jitter drawn
 * on the CPU from a seeded PRNG, applied by `kernels/augment.wgsl` while it converts the
 * 8-bit images to the normalized f32 model input. CPU twin: `src/ref/augment.ts`.
 *
 * Geometry works in pixel-index coordinates (x right, y down) about the centre
 * `c = (S - 1) / 2`. The forward transform that produced an output pixel `q` from an input
 * pixel `p` is `q - c = scale * R(rotation) * (p - c) + shift`; the kernel needs the
 * inverse, `p = M q + t`, which {@link packParams} computes. Samples outside the image are
 * black (0), matching the letterbox background.
 *
 * Photometry works on `v = u8 / 255`: `v = clamp((v - 0.5) * contrast + 0.5 + brightness,
 * 0, 1) ^ gamma`, then `(v - mean) / std` with the data set's pixel statistics.
 *
 * Random ranges ({@link DEFAULT_RANGES}): rotation uniform in ±7.5°, shift uniform in ±2.5 % of
 * the side on each axis, scale uniform in 1 ± 0.05, brightness uniform in ±0.1, contrast
 * uniform in [0.8, 1.25], gamma log-uniform in [0.7, 1 / 0.7] (symmetric about 1 in log
 * space). The kernel takes any ranges (its tests use ±15° and larger); evaluation uses
 * {@link IDENTITY}, which reproduces `(u8 / 255 - mean) / std` exactly.
 *
 * @module
 */
import type { Engine } from "../engine/engine.ts";
import type { Tensor } from "../engine/tensor.ts";
import { mulberry32 } from "../util.ts";

/** f32 slots before the per-image parameters: mean, std, count, unused. */
export const PARAM_HEADER = 4;
/** f32 slots per image: the 2x3 inverse affine, contrast, offset, gamma, 3 unused. */
export const PARAM_STRIDE = 12;

/** Largest output side the kernel is asked for. */
const MAX_SIDE = 4096;

/** The kernel file. */
const KERNEL = "augment.wgsl";
/** The kernel's default workgroup tile (its WX, WY overrides): 64 pixels of one image. */
const TILE_X = 16;
const TILE_Y = 4;

/** Bounds of the random augmentation (see the module doc for the distributions). */
export interface AugmentRanges {
  /** Largest rotation in degrees, either way. */
  rotationDeg: number;
  /** Largest shift per axis as a fraction of the side. */
  shift: number;
  /** Largest relative zoom: scale is drawn in `1 ± scale`. */
  scale: number;
  /** Largest brightness offset, in units of the full [0, 1] range. */
  brightness: number;
  /** Contrast factor range `[lo, hi]`. */
  contrast: readonly [number, number];
  /** Gamma range `[lo, hi]`, drawn log-uniformly. */
  gamma: readonly [number, number];
}

/**
 * The training ranges. Geometry: half of the data brief's ±15°, ±5 %, ±10 %. A short run is
 * short of training, not of data (its training MAE stays above the validation MAE), and in an
 * A/B on the real 100 px set (two 14-minute time-budgeted runs side by side, README) the
 * halved ranges reached a validation MAE of 24.2 months against 25.2. Exposure: the spread of
 * real radiographs (brightness ±0.1, contrast 0.8..1.25, gamma 0.7..1.43), so that the model
 * learns that exposure is not maturity; with the halved exposure ranges a gamma of 1.4 moved
 * the shipped model's validation MAE by 2.2 months (README "Image recipes").
 */
export const DEFAULT_RANGES: AugmentRanges = {
  rotationDeg: 7.5,
  shift: 0.025,
  scale: 0.05,
  brightness: 0.1,
  contrast: [0.8, 1.25],
  gamma: [0.7, 1 / 0.7],
};

/** One image's augmentation, in human units (the forward transform). */
export interface ImageAugment {
  /** Rotation in radians. */
  rotation: number;
  /** Shift in pixels along x (right). */
  shiftX: number;
  /** Shift in pixels along y (down). */
  shiftY: number;
  /** Zoom factor (> 1 enlarges). */
  scale: number;
  /** Added to `v` after contrast, before the clamp. */
  brightness: number;
  /** Multiplies `v - 0.5`. */
  contrast: number;
  /** Exponent applied after the clamp. */
  gamma: number;
}

/** No change at all: evaluation, and the "identity returns the input" contract. */
export const IDENTITY: ImageAugment = Object.freeze({
  rotation: 0,
  shiftX: 0,
  shiftY: 0,
  scale: 1,
  brightness: 0,
  contrast: 1,
  gamma: 1,
});

/**
 * Mixes integer keys into one 32-bit seed (murmur3's finalizer after each key), so nearby
 * keys such as consecutive steps or images give unrelated streams.
 */
export function hashSeed(...keys: number[]): number {
  let h = 0x9e3779b9;
  for (const key of keys) {
    h = Math.imul(h ^ (key >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Draws one image's augmentation from `rand` for images of side `size`. */
export function randomAugment(
  rand: () => number,
  size: number,
  ranges: AugmentRanges = DEFAULT_RANGES,
): ImageAugment {
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const [gLo, gHi] = ranges.gamma;
  return {
    rotation: uniform(-ranges.rotationDeg, ranges.rotationDeg) * Math.PI / 180,
    shiftX: uniform(-ranges.shift, ranges.shift) * size,
    shiftY: uniform(-ranges.shift, ranges.shift) * size,
    scale: uniform(1 - ranges.scale, 1 + ranges.scale),
    brightness: uniform(-ranges.brightness, ranges.brightness),
    contrast: uniform(ranges.contrast[0], ranges.contrast[1]),
    gamma: Math.exp(uniform(Math.log(gLo), Math.log(gHi))),
  };
}

/**
 * The augmentations of one batch: image `j` of step `step` draws from its own stream keyed
 * by `(seed, step, j)`, so a batch's parameters do not depend on the batch size or on the
 * batches drawn before it. `augment = false` gives {@link IDENTITY} for every image.
 */
export function drawAugments(
  seed: number,
  step: number,
  count: number,
  augment: boolean,
  size: number,
  ranges: AugmentRanges = DEFAULT_RANGES,
): ImageAugment[] {
  const out: ImageAugment[] = [];
  for (let j = 0; j < count; j++) {
    out.push(augment ? randomAugment(mulberry32(hashSeed(seed, step, j)), size, ranges) : IDENTITY);
  }
  return out;
}

/**
 * Where augmentation `a` of a side-`size` image moves the point `(fx, fy)`, both given as
 * fractions of the frame (0..1 from the top-left corner, as keypoint targets are): the
 * forward transform of the module doc, so keypoint targets move with their image. The result
 * is the same fraction of any output side, since resampling keeps pixel centres aligned.
 */
export function augmentPoint(
  a: ImageAugment,
  size: number,
  fx: number,
  fy: number,
): [number, number] {
  const c = (size - 1) / 2;
  const dx = fx * size - 0.5 - c, dy = fy * size - 0.5 - c;
  const cos = Math.cos(a.rotation) * a.scale, sin = Math.sin(a.rotation) * a.scale;
  const qx = c + cos * dx - sin * dy + a.shiftX;
  const qy = c + sin * dx + cos * dy + a.shiftY;
  return [(qx + 0.5) / size, (qy + 0.5) / size];
}

/**
 * A 2x3 affine `[m00, m01, m02, m10, m11, m12]` from output to input pixel-index coordinates
 * (`p = M q + t`), both of side `size`: a registration (`src/app/registration.ts`), applied
 * before any augmentation.
 */
export type PixelAffine = ArrayLike<number>;

/** The left-right mirror of a `size`-pixel frame: stored pixel `(size - 1 - x, y)`. */
export const mirrorAffine = (size: number): PixelAffine => [-1, 0, size - 1, 0, 1, 0];

/**
 * Packs augmentations into the kernel's parameter layout (see `kernels/augment.wgsl`):
 * header `[mean, std, count, 0]`, then per image the inverse affine (rows of
 * `p = M q + t`, from output pixels `q` of side `outSide` to input pixels `p` of side `size`),
 * contrast, offset `0.5 * (1 - contrast) + brightness`, gamma. With `registrations`, image
 * `j`'s augmentation acts on its registered frame: `p = R_j(A_j^-1(q))`, one resampling.
 */
export function packParams(
  augs: readonly ImageAugment[],
  size: number,
  mean: number,
  std: number,
  outSide = size,
  registrations?: readonly PixelAffine[],
): Float32Array {
  const out = new Float32Array(PARAM_HEADER + augs.length * PARAM_STRIDE);
  out.set([mean, std, augs.length, 0]);
  const c = (size - 1) / 2;
  // Output pixel q lands on u = r q + u0 of the input grid (r = size / outSide, pixel centres
  // aligned); for outSide = size, r = 1 and u0 = 0.
  const r = size / outSide;
  const u0 = (r - 1) / 2;
  augs.forEach((a, j) => {
    const o = PARAM_HEADER + j * PARAM_STRIDE;
    // The inverse of scale * R(rotation) is R(-rotation) / scale.
    const cos = Math.cos(a.rotation) / a.scale;
    const sin = Math.sin(a.rotation) / a.scale;
    // 0 - sin rather than -sin keeps the identity's entry +0 (tidier to read back).
    const m00 = cos, m01 = sin, m10 = 0 - sin, m11 = cos;
    // p = c + M (u - c - shift) = (M r) q + (c - M (c + shift - u0)); exactly 0 for the
    // identity at the same side.
    const qx = c + a.shiftX - u0, qy = c + a.shiftY - u0;
    let m = [
      m00 * r,
      m01 * r,
      c - (m00 * qx + m01 * qy),
      m10 * r,
      m11 * r,
      c - (m10 * qx + m11 * qy),
    ];
    const g = registrations?.[j];
    if (g) {
      m = [
        g[0] * m[0] + g[1] * m[3],
        g[0] * m[1] + g[1] * m[4],
        g[0] * m[2] + g[1] * m[5] + g[2],
        g[3] * m[0] + g[4] * m[3],
        g[3] * m[1] + g[4] * m[4],
        g[3] * m[2] + g[4] * m[5] + g[5],
      ];
    }
    out.set(m, o);
    out.set([a.contrast, 0.5 * (1 - a.contrast) + a.brightness, a.gamma], o + 6);
  });
  return out;
}

/**
 * Packs 8-bit pixels four per 32-bit word (little endian) into the bit pattern of a
 * Float32Array, the form `engine.tensor`/`engine.write` upload byte for byte.
 */
export function packBytes(bytes: Uint8Array): Float32Array {
  const words = Math.max(1, Math.ceil(bytes.length / 4));
  const padded = new Uint8Array(words * 4);
  padded.set(bytes);
  return new Float32Array(padded.buffer);
}

/** Number of 32-bit words that hold `count` images of side `size`, four pixels per word. */
export function packedWords(count: number, size: number): number {
  return Math.max(1, Math.ceil((count * size * size) / 4));
}

/**
 * Runs the augmentation kernel for input images of one side. Holds no buffers: every call
 * takes its output from the engine's pool, and a pipeline per (input side, output side) is
 * compiled on first use.
 */
export class Augmenter {
  /** The engine the kernel runs on. */
  readonly engine: Engine;
  /** Side of the square input images. */
  readonly size: number;
  /** Bounds of the random parameters. */
  readonly ranges: AugmentRanges;

  /** An augmenter for `size` x `size` input images. */
  constructor(engine: Engine, size: number, ranges: AugmentRanges = DEFAULT_RANGES) {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`Augmenter: invalid size ${size}`);
    this.engine = engine;
    this.size = size;
    this.ranges = ranges;
  }

  /**
   * The parameter buffer contents for one batch: random augmentations keyed by
   * `(seed, step, image)` when `augment`, identity otherwise, with `mean`/`std` in the header,
   * resampling to output images of side `outSide`, each image's augmentation composed with
   * its registration when given; also the drawn augmentations (keypoint targets move by them).
   */
  params(
    seed: number,
    step: number,
    count: number,
    augment: boolean,
    mean: number,
    std: number,
    outSide: number = this.size,
    registrations?: readonly PixelAffine[],
  ): { augments: ImageAugment[]; params: Float32Array } {
    const augments = drawAugments(seed, step, count, augment, this.size, this.ranges);
    return {
      augments,
      params: packParams(augments, this.size, mean, std, outSide, registrations),
    };
  }

  /**
   * Records the kernel: `pixels` holds the batch's bytes packed four per word (see
   * {@link packBytes}), `params` the output of {@link params} for the same count and
   * `outSide`. Returns the normalized `[count, outSide, outSide, 1]` input. Not recorded on
   * the tape (no gradient to the data).
   */
  run(pixels: Tensor, params: Tensor, outSide: number = this.size): Tensor {
    const count = (params.size - PARAM_HEADER) / PARAM_STRIDE;
    if (!Number.isInteger(count) || count < 1 || count > 65535) {
      throw new Error(`augment: params of ${params.size} values do not describe a batch`);
    }
    // Larger output sides interpolate (the keypoint model reads a 32 px test set at 64).
    if (!Number.isInteger(outSide) || outSide < 1 || outSide > MAX_SIDE) {
      throw new Error(`augment: output side ${outSide} is not in 1..${MAX_SIDE}`);
    }
    const S = this.size;
    if (pixels.size < packedWords(count, S)) {
      throw new Error(
        `augment: ${count} images of ${S}x${S} need ${packedWords(count, S)} packed words, ` +
          `got ${pixels.size}`,
      );
    }
    const e = this.engine;
    const y = e.empty([count, outSide, outSide, 1]);
    e.run({
      kernel: KERNEL,
      constants: { S, O: outSide },
      dispatch: [Math.ceil(outSide / TILE_X), Math.ceil(outSide / TILE_Y), count],
      workgroupSize: [TILE_X, TILE_Y],
    }, { pixels, params, y });
    return y;
  }
}
