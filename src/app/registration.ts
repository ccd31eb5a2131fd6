/**
 * Registration: the similarity transform (rotation, uniform scale, shift, and a mirror for a
 * right hand) that brings a hand's middle fingertip, thumb tip and wrist onto `CANONICAL`
 * (`src/data/recipe.ts`), so every hand reaches the bone-age model upright, at one size, in
 * one place, and always as a left hand. The transform is a {@link PixelAffine} that the
 * augmentation kernel composes with its own warp: one resampling per image, on the GPU.
 *
 * Finding a hand is checked, not assumed ({@link findHands}): the handedness model says
 * whether the image shows a left hand (as the RSNA radiographs do) or a right one, which is
 * then mirrored; the keypoint model, trained on left hands only, is run on that left hand and
 * on a copy turned and shrunk by {@link PROBE}. On a real hand the second set of points is
 * the first moved by the probe, while on a blank, noisy or unrelated image the model answers
 * about the same wherever the "hand" went.
 *
 * @module
 */
import { augmentPoint, IDENTITY, type ImageAugment, mirrorAffine } from "../ops/augment.ts";
import type { ImageSet } from "../data/dataset.ts";
import { type HandFinder, predictHandedness, predictKeypoints } from "./keypoints.ts";
import { CANONICAL, KEYPOINTS } from "../data/recipe.ts";

/** A similarity in frame fractions: `f = z * c + t` with `z = a + ib` (complex numbers). */
export interface Similarity {
  a: number;
  b: number;
  tx: number;
  ty: number;
}

/**
 * The least-squares similarity taking `CANONICAL` (`src/data/recipe.ts`) onto `found` (x, y per point, frame
 * fractions), and its root-mean-square residual as a fraction of the found hand's length.
 */
export function fitSimilarity(found: ArrayLike<number>): { sim: Similarity; residual: number } {
  const n = CANONICAL.length;
  let cx = 0, cy = 0, fx = 0, fy = 0;
  for (let k = 0; k < n; k++) {
    cx += CANONICAL[k][0] / n;
    cy += CANONICAL[k][1] / n;
    fx += found[2 * k] / n;
    fy += found[2 * k + 1] / n;
  }
  // z = sum (f - f̄) conj(c - c̄) / sum |c - c̄|^2
  let re = 0, im = 0, norm = 0;
  for (let k = 0; k < n; k++) {
    const ux = CANONICAL[k][0] - cx, uy = CANONICAL[k][1] - cy;
    const vx = found[2 * k] - fx, vy = found[2 * k + 1] - fy;
    re += vx * ux + vy * uy;
    im += vy * ux - vx * uy;
    norm += ux * ux + uy * uy;
  }
  const a = re / norm, b = im / norm;
  const sim = { a, b, tx: fx - (a * cx - b * cy), ty: fy - (b * cx + a * cy) };
  let sq = 0;
  for (let k = 0; k < n; k++) {
    const [px, py] = applySimilarity(sim, CANONICAL[k][0], CANONICAL[k][1]);
    sq += (px - found[2 * k]) ** 2 + (py - found[2 * k + 1]) ** 2;
  }
  return { sim, residual: Math.sqrt(sq / n) / handLength(found) };
}

/** Where `sim` takes the frame fraction `(cx, cy)`. */
export function applySimilarity(sim: Similarity, cx: number, cy: number): [number, number] {
  return [sim.a * cx - sim.b * cy + sim.tx, sim.b * cx + sim.a * cy + sim.ty];
}

/** Wrist-to-middle-fingertip distance of points in {@link KEYPOINTS} order. */
export function handLength(points: ArrayLike<number>): number {
  return Math.hypot(points[0] - points[4], points[1] - points[5]);
}

/**
 * Whether points in {@link KEYPOINTS} order are those of a left hand as the RSNA radiographs
 * show it: the thumb tip to the right of the middle finger, seen from the wrist (image y
 * points down).
 */
export function isLeftHand(points: ArrayLike<number>): boolean {
  const [mx, my, tx, ty, wx, wy] = Array.from({ length: 6 }, (_, i) => points[i]);
  return (mx - wx) * (ty - wy) - (my - wy) * (tx - wx) > 0;
}

/**
 * The pixel-index affine (`p = M q + t`, both frames of side `size`) of `sim`: output pixel
 * `q` has frame fraction `(q + 0.5) / size`, which `sim` takes to the stored image's fraction
 * `f`, pixel `size * f - 0.5`. With `mirrored`, `sim` was fitted on the left-right mirrored
 * image, so its result is mirrored back (`x -> size - 1 - x`).
 */
export function pixelAffine(sim: Similarity, size: number, mirrored = false): number[] {
  const { a, b } = sim;
  const m = [
    a,
    -b,
    0.5 * (a - b) + size * sim.tx - 0.5,
    b,
    a,
    0.5 * (a + b) + size * sim.ty - 0.5,
  ];
  return mirrored ? [-m[0], -m[1], size - 1 - m[2], m[3], m[4], m[5]] : m;
}

/** The probe warp of {@link findHands}: turned 12°, shrunk by 15 %, moved right and down. */
export const PROBE = { rotation: 12 * Math.PI / 180, scale: 0.85, shift: 0.04 };

/** Bounds a found hand must meet (fractions of the frame and of the hand's length). */
export const HAND_CHECKS = {
  /** Wrist-to-fingertip length, as a fraction of the frame. */
  minLength: 0.2,
  maxLength: 1.3,
  /** RMS distance of the points from the fitted canonical triangle / hand length. */
  maxResidual: 0.25,
  /** RMS disagreement between the probed points and the moved points / hand length. */
  maxDisagreement: 0.12,
};

/** What {@link findHands} found in one image. */
export interface HandFinding {
  /** The registration (model input → stored pixels), or null when no hand was found. */
  registration: number[] | null;
  /** Points found, frame fractions in {@link KEYPOINTS} order (of the mirrored frame if so). */
  points: number[];
  /** Whether the hand was found on the mirrored image (a right hand). */
  mirrored: boolean;
  /**
   * The handedness model's answer: near +1 for a left hand, near -1 for a right one; 1 when
   * the keypoint folder has no handedness model.
   */
  handedness: number;
  /** Hand length as a fraction of the frame. */
  length: number;
  /** Residual of the similarity fit / hand length. */
  residual: number;
  /** Disagreement under the probe / hand length. */
  disagreement: number;
  /** Why no hand was accepted; null when one was. */
  refusal: string | null;
}

/** Checks one image's points and probed points; the finding if a hand is there. */
function judge(
  points: ArrayLike<number>,
  probed: ArrayLike<number>,
  probe: ImageAugment,
  size: number,
  handedness: number,
): HandFinding {
  const mirrored = handedness < 0;
  const pts = Array.from(points);
  const length = handLength(pts);
  const { sim, residual } = fitSimilarity(pts);
  let sq = 0;
  for (let k = 0; k < KEYPOINTS.length; k++) {
    const [mx, my] = augmentPoint(probe, size, pts[2 * k], pts[2 * k + 1]);
    sq += (mx - probed[2 * k]) ** 2 + (my - probed[2 * k + 1]) ** 2;
  }
  const disagreement = Math.sqrt(sq / KEYPOINTS.length) / Math.max(length, 1e-6);
  const c = HAND_CHECKS;
  const refusal = length < c.minLength || length > c.maxLength
    ? `hand length ${(100 * length).toFixed(0)}% of the frame is outside ` +
      `${100 * c.minLength}..${100 * c.maxLength}%`
    : !isLeftHand(pts)
    ? "the thumb is on the wrong side of the middle finger"
    : residual > c.maxResidual
    ? `the three points do not form a hand (misfit ${residual.toFixed(2)})`
    : disagreement > c.maxDisagreement
    ? `the points do not follow the image when it is moved (disagreement ${
      disagreement.toFixed(2)
    } of the hand length, limit ${c.maxDisagreement})`
    : null;
  return {
    registration: refusal ? null : pixelAffine(sim, size, mirrored),
    points: pts,
    mirrored,
    handedness,
    length,
    residual,
    disagreement,
    refusal,
  };
}

/**
 * Finds and registers the hand in each of `rows` of `set` (default: all): which hand it is
 * (a right one is looked at mirrored), then keypoints on the image and on its {@link PROBE}d
 * copy. A row without a hand gets `registration: null` and the reason.
 */
export async function findHands(
  finder: HandFinder,
  set: ImageSet,
  rows: readonly number[] = set.ids.map((_, i) => i),
): Promise<HandFinding[]> {
  const S = set.size;
  const probe: ImageAugment = {
    ...IDENTITY,
    rotation: PROBE.rotation,
    scale: PROBE.scale,
    shiftX: PROBE.shift * S,
    shiftY: PROBE.shift * S,
  };
  const per = 2 * KEYPOINTS.length;
  const sides = finder.handedness
    ? await predictHandedness(finder.handedness, set, rows)
    : new Float32Array(rows.length).fill(1);
  const { model, meta } = finder;
  const found: HandFinding[] = new Array(rows.length);
  for (const mirrored of [false, true]) {
    const at = rows.flatMap((_, j) => ((sides[j] < 0) === mirrored ? [j] : []));
    if (at.length === 0) continue;
    const subset = at.map((j) => rows[j]);
    const pre = mirrored ? mirrorAffine(S) : undefined;
    const points = await predictKeypoints(model, meta.normalization, set, subset, { pre });
    const probed = await predictKeypoints(model, meta.normalization, set, subset, {
      augment: probe,
      pre,
    });
    at.forEach((j, k) => {
      found[j] = judge(
        points.subarray(k * per, (k + 1) * per),
        probed.subarray(k * per, (k + 1) * per),
        probe,
        S,
        sides[j],
      );
    });
  }
  return found;
}
