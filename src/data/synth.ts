/**
 * Synthetic stand-in for the RSNA data: left-hand "radiographs" whose skeletal maturity
 * follows bone age and sex the way real hands do, written in the Kaggle layout.
 *
 * The model, in short (ages in years of a *maturity* timeline calibrated on boys):
 * - girls mature earlier: a girl's maturity is 1.13 x her bone age (fusion ~2 years earlier);
 * - carpal bones appear in the order capitate, hamate (infancy), triquetrum (~2.5), lunate
 *   (~3.5), trapezium, trapezoid, scaphoid (~5-6), pisiform (~10.5), then grow to full size;
 * - epiphyses of radius, metacarpals and phalanges appear at 1-3 years (ulna ~6.5), widen to
 *   the width of their shaft by ~11.5, cap it, and fuse (dark physis line closes) at 13.5-17.5;
 * - bones get denser and relatively wider with maturity; the thumb sesamoid appears ~13;
 * - hand size follows *chronological* age (bone age plus noise), framing varies, so size is
 *   only a weak cue; rotation, exposure, gamma, noise, collimation borders and side markers
 *   vary per image.
 * Each image is drawn with ellipses and capsules into a Float32Array, then encoded as an 8-bit
 * gray PNG (like the real data) with imagescript's PNG encoder.
 *
 * @module
 */
// imagescript's pure-JS PNG encoder, imported by path: the package entry loads a native addon.
import pngjs from "imagescript/png/node.js";
import { join } from "node:path";
import { gaussian, hashKey, mulberry32 } from "../util.ts";

/** One synthetic person. */
export interface SynthSubject {
  /** Image id (file name without extension). */
  id: string;
  /** 1 male, 0 female. */
  male: 0 | 1;
  /** Label: bone age in months (integer, 1..228). */
  boneage: number;
  /** Chronological age in months (hidden; drives hand size only). */
  chronoAge: number;
}

/** Options of {@link renderHand}. */
export interface RenderOptions {
  /** Output side in pixels. */
  size: number;
  /** Random source for pose, exposure and noise. */
  rand: () => number;
  /** No rotation, jitter, noise, markers or exposure changes (for tests of the anatomy). */
  clean?: boolean;
  /**
   * Filled with the pixel positions (x, y, origin top-left) of the drawn hand's registration
   * points: `middle_finger4` and `thumb4` (the fingertips) and `wrist` (between the radius
   * and the carpals), the labels of `hand-keypoints.csv`.
   */
  keypoints?: Record<string, [number, number]>;
}

/** Maturity on the male timeline in years: girls are ~13% further along at the same bone age. */
export function maturityYears(boneageMonths: number, male: number): number {
  const years = boneageMonths / 12;
  return male ? years : years * 1.13;
}

const smooth = (a: number, b: number, x: number) => {
  const t = Math.min(1, Math.max(0, (x - a) / (b - a)));
  return t * t * (3 - 2 * t);
};

/** Carpals: position and adult half-axes in hand units, angle (deg), appearance and full-size age. */
const CARPALS = [
  { name: "capitate", u: 0.0, v: 0.165, rx: 0.04, ry: 0.055, deg: 10, appear: 0.2, full: 8 },
  { name: "hamate", u: -0.075, v: 0.16, rx: 0.036, ry: 0.047, deg: -15, appear: 0.35, full: 8 },
  { name: "triquetrum", u: -0.09, v: 0.09, rx: 0.032, ry: 0.027, deg: 20, appear: 2.5, full: 10 },
  { name: "lunate", u: -0.017, v: 0.083, rx: 0.036, ry: 0.03, deg: 0, appear: 3.5, full: 11 },
  { name: "trapezium", u: 0.115, v: 0.14, rx: 0.035, ry: 0.03, deg: 30, appear: 5, full: 12 },
  { name: "trapezoid", u: 0.062, v: 0.158, rx: 0.026, ry: 0.028, deg: 0, appear: 5.5, full: 12 },
  { name: "scaphoid", u: 0.07, v: 0.083, rx: 0.046, ry: 0.027, deg: 35, appear: 5.8, full: 12 },
  { name: "pisiform", u: -0.1, v: 0.07, rx: 0.018, ry: 0.018, deg: 0, appear: 10.5, full: 13 },
] as const;

/** Number of carpal bones visible at a bone age (monotone in age; girls earlier). */
export function visibleCarpals(boneageMonths: number, male: number): number {
  const m = maturityYears(boneageMonths, male);
  return CARPALS.filter((c) => m >= c.appear).length;
}

/** Epiphysis timeline of a long bone: appearance and fusion window, male years. */
interface Timeline {
  appear: number;
  fuseStart: number;
  fuseEnd: number;
}

/** Fusion progress 0 (open physis) to 1 (fused) of the distal radius, for tests and docs. */
export function radiusFusion(boneageMonths: number, male: number): number {
  return smooth(RADIUS_T.fuseStart, RADIUS_T.fuseEnd, maturityYears(boneageMonths, male));
}

const RADIUS_T: Timeline = { appear: 1.0, fuseStart: 16, fuseEnd: 17.5 };
const ULNA_T: Timeline = { appear: 6.5, fuseStart: 15.5, fuseEnd: 17 };
const MC_T: Timeline = { appear: 1.8, fuseStart: 14.8, fuseEnd: 16 };
const PHALANX_T: Timeline[] = [
  { appear: 1.6, fuseStart: 14.5, fuseEnd: 15.5 }, // proximal
  { appear: 2.3, fuseStart: 14.3, fuseEnd: 15.3 }, // middle
  { appear: 2.0, fuseStart: 13.5, fuseEnd: 14.5 }, // distal
];

/** Fingers 2-5: metacarpal base, direction (deg, + towards thumb), lengths and widths. */
const FINGERS = [
  { u: 0.085, v: 0.215, deg: 8, len: [0.3, 0.18, 0.11, 0.075], w: 0.041 },
  { u: 0.02, v: 0.225, deg: 1, len: [0.29, 0.2, 0.125, 0.08], w: 0.043 },
  { u: -0.04, v: 0.215, deg: -6, len: [0.27, 0.19, 0.12, 0.08], w: 0.04 },
  { u: -0.095, v: 0.195, deg: -14, len: [0.24, 0.15, 0.085, 0.07], w: 0.035 },
];

/** Additive or max drawing into a float canvas, in pixel coordinates. */
class Canvas {
  readonly px: Float32Array;
  constructor(readonly size: number) {
    this.px = new Float32Array(size * size);
  }

  /** Segment with round ends; `tube` brightens towards the edge like a cortex seen sideways. */
  capsule(
    ax: number,
    ay: number,
    bx: number,
    by: number,
    r: number,
    value: number,
    opts: { tube?: boolean; soft?: number; max?: boolean } = {},
  ): void {
    const soft = opts.soft ?? 1;
    const pad = r + soft;
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - pad));
    const x1 = Math.min(this.size - 1, Math.ceil(Math.max(ax, bx) + pad));
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - pad));
    const y1 = Math.min(this.size - 1, Math.ceil(Math.max(ay, by) + pad));
    const dx = bx - ax, dy = by - ay;
    const len2 = Math.max(1e-9, dx * dx + dy * dy);
    for (let y = y0; y <= y1; y++) {
      const py = y + 0.5 - ay;
      for (let x = x0; x <= x1; x++) {
        const pxl = x + 0.5 - ax;
        const t = Math.min(1, Math.max(0, (pxl * dx + py * dy) / len2));
        const ex = pxl - t * dx, ey = py - t * dy;
        const d = Math.sqrt(ex * ex + ey * ey);
        const cov = Math.min(1, (r - d) / soft + 0.5);
        if (cov <= 0) continue;
        const q = Math.min(1, d / r);
        const v = value * cov * (opts.tube ? 0.6 + 0.4 * q * q : 1);
        this.put(y * this.size + x, v, opts.max);
      }
    }
  }

  /** Rotated ellipse; `tube` gives the denser rim of a small bone. */
  ellipse(
    cx: number,
    cy: number,
    rx: number,
    ry: number,
    angle: number,
    value: number,
    opts: { tube?: boolean; soft?: number; max?: boolean } = {},
  ): void {
    const soft = opts.soft ?? 1;
    const pad = Math.max(rx, ry) + soft;
    const c = Math.cos(angle), s = Math.sin(angle);
    const x0 = Math.max(0, Math.floor(cx - pad)), x1 = Math.min(this.size - 1, Math.ceil(cx + pad));
    const y0 = Math.max(0, Math.floor(cy - pad)), y1 = Math.min(this.size - 1, Math.ceil(cy + pad));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const ex = (dx * c + dy * s) / rx, ey = (-dx * s + dy * c) / ry;
        const q = Math.sqrt(ex * ex + ey * ey);
        // Distance to the rim along the ray from the centre, in pixels.
        const rim = q > 1e-6 ? ((1 - q) * Math.sqrt(dx * dx + dy * dy)) / q : Math.min(rx, ry);
        const cov = Math.min(1, rim / soft + 0.5);
        if (cov <= 0) continue;
        const v = value * cov * (opts.tube ? 0.7 + 0.3 * Math.min(1, q * q) : 1);
        this.put(y * this.size + x, v, opts.max);
      }
    }
  }

  private put(i: number, v: number, max?: boolean): void {
    if (max) this.px[i] = Math.max(this.px[i], v);
    else this.px[i] += v;
  }
}

/** Hand-local coordinates (u right, v towards the fingertips, adult hand length 1) to pixels. */
interface Pose {
  cx: number;
  cy: number;
  scale: number;
  cos: number;
  sin: number;
}

const V_CENTER = 0.4;

function toPx(p: Pose, u: number, v: number): [number, number] {
  const x = u, y = -(v - V_CENTER);
  return [p.cx + p.scale * (p.cos * x - p.sin * y), p.cy + p.scale * (p.sin * x + p.cos * y)];
}

/** Angle in pixel space of a local direction (radians, from local angle measured from +u). */
function dirPx(p: Pose, localAngle: number): number {
  const x = Math.cos(localAngle), y = -Math.sin(localAngle);
  return Math.atan2(p.sin * x + p.cos * y, p.cos * x - p.sin * y);
}

/** Everything one skeleton drawing needs to know about maturity. */
interface Maturity {
  m: number;
  density: number;
  width: number;
  joint: number;
  soft: number;
}

/**
 * Draws one long bone from `(u, v)` along local angle `dir` (radians from +u): a tube-like
 * shaft and, at `epiEnd`, an epiphysis that appears, widens, caps and fuses on `t`.
 * Returns the far end in local coordinates.
 */
function longBone(
  bone: Canvas,
  pose: Pose,
  mat: Maturity,
  u: number,
  v: number,
  dir: number,
  length: number,
  width: number,
  t: Timeline,
  epiEnd: "start" | "end",
): [number, number] {
  const du = Math.cos(dir), dv = Math.sin(dir);
  const w = width * mat.width;
  const zone = Math.min(0.22 * length, 1.05 * w);
  const at = (s: number) => toPx(pose, u + du * s, v + dv * s);
  const value = mat.density;
  // Shaft runs from the zone's inner edge to the other end; the zone is cartilage until ossified.
  const [s0, s1] = epiEnd === "start" ? [zone, length] : [0, length - zone];
  const [ax, ay] = at(s0), [bx, by] = at(s1);
  bone.capsule(ax, ay, bx, by, (w / 2) * pose.scale, value, { tube: true, soft: mat.soft });
  if (mat.m >= t.appear) {
    const grow = Math.min(1, (mat.m - t.appear) / (11.5 - t.appear));
    const cap = smooth(11.5, 13.5, mat.m);
    const fuse = smooth(t.fuseStart, t.fuseEnd, mat.m);
    const half = zone * 0.4 * (0.35 + 0.65 * grow);
    const centre = zone * 0.42;
    const wide = w * (0.35 + 0.65 * grow + 0.12 * cap);
    const s = epiEnd === "start" ? centre : length - centre;
    const [ex, ey] = at(s);
    bone.ellipse(
      ex,
      ey,
      (wide / 2) * pose.scale,
      half * pose.scale,
      dirPx(pose, dir) + Math.PI / 2,
      value * 0.85,
      {
        tube: true,
        soft: mat.soft,
        max: true,
      },
    );
    if (fuse > 0) {
      // Bone bridging the physis: the dark line between epiphysis and shaft fades out. Max
      // blending, so the bridge does not add up with the bone it joins into bright beads.
      const g0 = epiEnd === "start" ? centre : length - zone;
      const g1 = epiEnd === "start" ? zone : length - centre;
      const [gx0, gy0] = at(g0), [gx1, gy1] = at(g1);
      bone.capsule(gx0, gy0, gx1, gy1, (wide / 2) * 0.9 * pose.scale, value * 0.8 * fuse, {
        soft: mat.soft,
        max: true,
      });
    }
  }
  const [eu, ev] = [u + du * length, v + dv * length];
  return [eu, ev];
}

/** Renders one subject's hand as `size*size` floats in [0, 1] (bright bone on dark). */
export function renderHand(subject: SynthSubject, options: RenderOptions): Float32Array {
  const { size, rand, clean = false } = options;
  const jitter = (sd: number) => (clean ? 0 : gaussian(rand) * sd);
  const m = maturityYears(subject.boneage, subject.male);
  const t = (subject.chronoAge / 12) * (subject.male ? 1 : 1.13);
  const growth = 0.35 + 0.65 * (1 - Math.exp(-t / 6));
  const mat: Maturity = {
    m,
    // Density varies between people as much as it grows, so brightness alone says little.
    density: (0.45 + 0.2 * smooth(0, 16, m)) * (1 + Math.max(-0.25, Math.min(0.25, jitter(0.1)))),
    width: 0.8 + 0.2 * smooth(0, 15, m),
    joint: 0.012 + 0.022 * (1 - smooth(0, 10, m)),
    soft: Math.max(0.6, (size / 256) * (clean ? 1 : 0.8 + 0.8 * rand())),
  };
  const angle = clean ? 0 : Math.max(-0.25, Math.min(0.25, gaussian(rand) * 0.1));
  const pose: Pose = {
    cx: size / 2 + jitter(0.045) * size,
    cy: size / 2 + jitter(0.045) * size,
    scale: size * 0.76 * (0.6 + 0.4 * growth) * (subject.male ? 1 : 0.95) *
      (1 + Math.max(-0.18, Math.min(0.18, jitter(0.08)))),
    cos: Math.cos(angle),
    sin: Math.sin(angle),
  };
  const tissue = new Canvas(size), bone = new Canvas(size);
  const px = (u: number, v: number) => toPx(pose, u, v);
  const tsoft = { soft: Math.max(1.5, size / 60), max: true };
  const tv = 0.22 + jitter(0.03);

  // Soft tissue: forearm, palm, fingers (max-blended so overlaps do not show seams).
  tissue.capsule(...px(0, -0.7), ...px(0.01, 0.1), 0.15 * pose.scale, tv, tsoft);
  tissue.ellipse(...px(0.005, 0.3), 0.17 * pose.scale, 0.24 * pose.scale, angle, tv, tsoft);

  // Forearm: radius (thumb side) and ulna, epiphyses at their distal ends.
  longBone(bone, pose, mat, 0.06, -0.5, Math.PI / 2 + 0.02, 0.5, 0.1, RADIUS_T, "end");
  longBone(bone, pose, mat, -0.07, -0.5, Math.PI / 2 - 0.01, 0.47, 0.06, ULNA_T, "end");

  for (const c of CARPALS) {
    if (m < c.appear) continue;
    const g = 0.25 + 0.75 * smooth(c.appear, c.full, m);
    // Young carpals are round; their adult shape comes with size.
    const r0 = Math.min(c.rx, c.ry);
    const rx = (r0 + (c.rx - r0) * g) * g, ry = (r0 + (c.ry - r0) * g) * g;
    const [x, y] = px(c.u, c.v);
    const a = dirPx(pose, (c.deg * Math.PI) / 180);
    bone.ellipse(x, y, rx * pose.scale, ry * pose.scale, a, mat.density, {
      tube: true,
      soft: mat.soft,
    });
  }

  // Fingers 2-5: metacarpal (epiphysis distal), then proximal, middle, distal phalanges
  // (epiphyses proximal).
  for (const [finger, f] of FINGERS.entries()) {
    let dir = Math.PI / 2 - ((f.deg + jitter(2)) * Math.PI) / 180;
    let [u, v] = [f.u, f.v];
    const tipStart: [number, number] = [u, v];
    for (let k = 0; k < 4; k++) {
      const w = k === 0 ? f.w : f.w * [0, 0.9, 0.78, 0.66][k];
      const tl = k === 0 ? MC_T : PHALANX_T[k - 1];
      [u, v] = longBone(bone, pose, mat, u, v, dir, f.len[k], w, tl, k === 0 ? "end" : "start");
      u += Math.cos(dir) * mat.joint;
      v += Math.sin(dir) * mat.joint;
      if (k === 0) dir += (jitter(3) * Math.PI) / 180;
    }
    tissue.capsule(...px(...tipStart), ...px(u, v), f.w * 1.6 * pose.scale, tv, tsoft);
    // The soft-tissue tip lies beyond the bone's end by the capsule's radius.
    const tip = px(u + Math.cos(dir) * f.w * 0.8, v + Math.sin(dir) * f.w * 0.8);
    if (finger === 1 && options.keypoints) options.keypoints.middle_finger4 = tip;
  }

  // Thumb: metacarpal with a proximal epiphysis, proximal and distal phalanx, sesamoid.
  let dir = (52 * Math.PI) / 180 + (jitter(4) * Math.PI) / 180;
  let [u, v] = [0.13, 0.17];
  const thumbStart: [number, number] = [u, v];
  const thumb = [[0.2, 0.046, MC_T], [0.14, 0.04, { ...PHALANX_T[0], appear: 2.5 }], [
    0.1,
    0.032,
    { ...PHALANX_T[2], appear: 1.5 },
  ]] as const;
  for (let k = 0; k < thumb.length; k++) {
    const [len, w, tl] = thumb[k];
    [u, v] = longBone(bone, pose, mat, u, v, dir, len, w, tl, "start");
    if (k === 0 && m >= 13) {
      const [sx, sy] = px(u - 0.012, v + 0.005);
      bone.ellipse(
        sx,
        sy,
        0.011 * pose.scale * smooth(13, 15, m + 1),
        0.011 * pose.scale,
        0,
        mat.density,
        {
          soft: mat.soft,
        },
      );
    }
    u += Math.cos(dir) * mat.joint;
    v += Math.sin(dir) * mat.joint;
    dir += (8 * Math.PI) / 180;
  }
  tissue.capsule(...px(...thumbStart), ...px(u, v), 0.07 * pose.scale, tv, tsoft);
  if (options.keypoints) {
    options.keypoints.thumb4 = px(u + Math.cos(dir) * 0.035, v + Math.sin(dir) * 0.035);
    options.keypoints.wrist = px(0, 0.03);
  }

  return expose(tissue.px, bone.px, size, rand, clean);
}

/** Film look: background, exposure and gamma, noise, optional collimation border and marker. */
function expose(
  tissue: Float32Array,
  bone: Float32Array,
  size: number,
  rand: () => number,
  clean: boolean,
): Float32Array {
  const out = new Float32Array(size * size);
  const bg = clean ? 0.04 : 0.02 + 0.1 * rand();
  const gx = clean ? 0 : (rand() - 0.5) * 0.1, gy = clean ? 0 : (rand() - 0.5) * 0.1;
  const gain = clean ? 1 : 0.7 + 0.6 * rand();
  const gamma = clean ? 1 : Math.exp((rand() - 0.5) * 0.7);
  const sigma = clean ? 0 : 0.01 + 0.03 * rand();
  // Exposure curve as a table over [0, 2): one Math.pow per entry instead of per pixel.
  const lut = new Float32Array(2048);
  for (let k = 0; k < lut.length; k++) lut[k] = gain * Math.pow(k / 1024, gamma);
  // Uniform grain with the asked-for SD; averaging in the resize makes it Gaussian anyway.
  const grain = sigma * Math.sqrt(12);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const base = bg + gx * (x / size - 0.5) + gy * (y / size - 0.5);
      const e = Math.min(2047, Math.max(0, Math.round((base + tissue[i] + bone[i]) * 1024)));
      out[i] = lut[e] + (sigma > 0 ? grain * (rand() - 0.5) : 0);
    }
  }
  if (!clean && rand() < 0.25) {
    // Collimator edge: a bright band on one or two sides.
    const edge = 0.7 + 0.25 * rand();
    const left = rand() < 0.5 ? Math.floor(rand() * 0.08 * size) : 0;
    const top = rand() < 0.5 ? Math.floor(rand() * 0.08 * size) : 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) if (x < left || y < top) out[y * size + x] = edge;
    }
  }
  if (!clean && rand() < 0.5) {
    // Side marker ("L"): a bright glyph in a random corner.
    const s = Math.max(4, Math.round(size * (0.05 + 0.04 * rand())));
    const x0 = rand() < 0.5 ? Math.round(size * 0.04) : size - s - Math.round(size * 0.04);
    const y0 = rand() < 0.5 ? Math.round(size * 0.04) : size - s - Math.round(size * 0.04);
    const th = Math.max(1, Math.round(s / 4));
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        if (x < th || y >= s - th) out[(y0 + y) * size + x0 + x] = 0.95;
      }
    }
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, out[i]));
  return out;
}

/**
 * Draws subject `index` of a seeded population: bone age from a normal(127, 41) months
 * truncated to 1..228 like the RSNA training set, 54% male, chronological age = bone age
 * plus noise (SD 12 months). Subject `index` does not depend on how many are drawn.
 */
export function sampleSubject(seed: number, index: number): SynthSubject {
  const rand = mulberry32(parseInt(hashKey(`${seed}/${index}/subject`).slice(0, 8), 16));
  const male = rand() < 0.54 ? 1 : 0;
  let age = -1;
  while (age < 1 || age > 228) age = 127 + 41 * gaussian(rand);
  const boneage = Math.round(age);
  const chronoAge = Math.max(0, boneage + 12 * gaussian(rand));
  return { id: String(index + 1), male, boneage, chronoAge };
}

type PngEncode = (
  data: Uint8Array,
  opts: { width: number; height: number; channels: number; level: number },
) => Uint8Array;

/** Options of {@link writeSynthDataset}. */
export interface SynthOptions {
  /** Number of images. */
  n: number;
  /** Population seed (default 0). */
  seed?: number;
  /** Image side in pixels (default 256). */
  size?: number;
  /** Called after each image with the count written so far. */
  onProgress?: (done: number) => void;
}

/**
 * Writes a Kaggle-layout folder: `boneage-training-dataset.csv` (`id,boneage,male`) and
 * `boneage-training-dataset/<id>.png`, plus `hand-keypoints.csv` with the registration points
 * of every hand (the layout of `src/data/keypoints.ts`). Returns the subjects written.
 */
export async function writeSynthDataset(
  outDir: string,
  options: SynthOptions,
): Promise<SynthSubject[]> {
  const { n, seed = 0, size = 256 } = options;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be a positive integer, got ${n}`);
  if (!Number.isInteger(size) || size < 16) throw new RangeError(`size must be >= 16, got ${size}`);
  const imgDir = join(outDir, "boneage-training-dataset");
  await Deno.mkdir(imgDir, { recursive: true });
  const subjects: SynthSubject[] = [];
  const lines = ["id,boneage,male"];
  const encode = (pngjs as { encode: PngEncode }).encode;
  const gray8 = new Uint8Array(size * size);
  const pointNames = ["middle_finger4", "thumb4", "wrist"];
  const keypointLines = [
    ["id,width,height,box_x,box_y,box_w,box_h", ...pointNames.map((k) => `${k}_x,${k}_y,${k}_v`)]
      .join(","),
  ];
  for (let i = 0; i < n; i++) {
    const s = sampleSubject(seed, i);
    const rand = mulberry32(parseInt(hashKey(`${seed}/${i}/render`).slice(0, 8), 16));
    const keypoints: Record<string, [number, number]> = {};
    const gray = renderHand(s, { size, rand, keypoints });
    // A point drawn outside the frame is not labelled (v = 0), as an annotator would leave it.
    const cells = pointNames.map((k) => {
      const [x, y] = keypoints[k].map((c) => Math.round(c * 100) / 100);
      const inside = x >= 0 && y >= 0 && x <= size && y <= size;
      return inside ? `${x},${y},2` : `,,0`;
    });
    keypointLines.push([s.id, size, size, 0, 0, size, size, ...cells].join(","));
    for (let p = 0; p < gray.length; p++) gray8[p] = Math.round(gray[p] * 255);
    const png = encode(gray8, { width: size, height: size, channels: 1, level: 3 });
    await Deno.writeFile(join(imgDir, `${s.id}.png`), png);
    lines.push(`${s.id},${s.boneage},${s.male ? "True" : "False"}`);
    subjects.push(s);
    options.onProgress?.(i + 1);
  }
  await Deno.writeTextFile(join(outDir, "boneage-training-dataset.csv"), lines.join("\n") + "\n");
  await Deno.writeTextFile(join(outDir, "hand-keypoints.csv"), keypointLines.join("\n") + "\n");
  return subjects;
}
