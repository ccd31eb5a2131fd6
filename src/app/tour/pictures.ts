/**
 * The tour's pictures (`--save`): the input, feature maps and the input gradient as PNGs.
 *
 * @module
 */

import { encodeGrayPng, encodeRgbPng } from "../../data/png.ts";
import type { TourPictures, TourResult } from "./types.ts";

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
