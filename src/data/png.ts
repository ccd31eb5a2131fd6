/**
 * A small PNG codec on node:zlib: decoding any non-interlaced PNG straight to 8-bit gray, and
 * encoding 8/16-bit gray (test fixtures). Why not imagescript alone: its package entry loads a
 * native addon (needs --allow-ffi) and its wasm decoders read an environment variable (need
 * --allow-env); it expands gray to RGBA, so this is ~2x faster on the 8-bit gray radiographs
 * that make up the data; and it truncates 16-bit samples to their high byte and ignores
 * `sBIT`, where this rounds and honours the significant bits.
 *
 * @module
 */
import { crc32, deflateSync, inflateSync } from "node:zlib";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/**
 * A PNG file from its chunks, in order, each framed with its length and CRC (IEND is the
 * caller's to add). The encoders below use it, and tests build unusual files with it.
 */
export function assemblePng(chunks: readonly [type: string, data: Uint8Array][]): Uint8Array {
  const size = 8 + chunks.reduce((n, [, data]) => n + 12 + data.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(SIGNATURE);
  let at = 8;
  for (const [type, data] of chunks) {
    view.setUint32(at, data.length);
    for (let i = 0; i < 4; i++) out[at + 4 + i] = type.charCodeAt(i);
    out.set(data, at + 8);
    view.setUint32(at + 8 + data.length, crc32(out.subarray(at + 4, at + 8 + data.length)));
    at += 12 + data.length;
  }
  return out;
}

/** The IHDR chunk's data: size, bit depth and color type (no interlace). */
export function ihdrData(width: number, height: number, depth: number, colorType: number) {
  const d = new Uint8Array(13);
  const view = new DataView(d.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  d[8] = depth;
  d[9] = colorType;
  return d;
}

/** Options of {@link encodeGrayPng}. */
export interface GrayPngOptions {
  /** 8 (default) or 16 bits per sample. */
  depth?: 8 | 16;
  /** Significant bits to announce in an `sBIT` chunk (e.g. 12 for 12-bit data in 16 bits). */
  significantBits?: number;
  /** PNG row filter applied to every row: 0 none (default), 1 sub, 2 up, 3 average, 4 Paeth. */
  filter?: 0 | 1 | 2 | 3 | 4;
}

/**
 * Encodes a grayscale PNG (color type 0). `pixels` holds `width*height`
 * samples: 0..255 for depth 8, 0..65535 for depth 16.
 */
export function encodeGrayPng(
  pixels: ArrayLike<number>,
  width: number,
  height: number,
  options: GrayPngOptions = {},
): Uint8Array {
  const depth = options.depth ?? 8;
  const bytesPer = depth / 8;
  const stride = 1 + width * bytesPer;
  const raw = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = pixels[y * width + x];
      const o = y * stride + 1 + x * bytesPer;
      if (depth === 16) {
        raw[o] = v >>> 8;
        raw[o + 1] = v & 255;
      } else raw[o] = v;
    }
  }
  const filter = options.filter ?? 0;
  // Bottom-up so every row is predicted from still-unfiltered neighbours.
  for (let y = height - 1; y >= 0 && filter !== 0; y--) {
    const cur = y * stride + 1;
    raw[cur - 1] = filter;
    for (let i = stride - 2; i >= 0; i--) {
      const a = i >= bytesPer ? raw[cur + i - bytesPer] : 0;
      const b = y > 0 ? raw[cur + i - stride] : 0;
      const c = y > 0 && i >= bytesPer ? raw[cur + i - stride - bytesPer] : 0;
      raw[cur + i] = (raw[cur + i] - predict(filter, a, b, c)) & 255;
    }
  }
  const chunks: [string, Uint8Array][] = [["IHDR", ihdrData(width, height, depth, 0)]];
  if (options.significantBits !== undefined) {
    chunks.push(["sBIT", new Uint8Array([options.significantBits])]);
  }
  chunks.push(["IDAT", new Uint8Array(deflateSync(raw))], ["IEND", new Uint8Array()]);
  return assemblePng(chunks);
}

/** A decoded single-channel 8-bit image. */
export interface GrayImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width*height` bytes, rows top to bottom. */
  data: Uint8Array;
}

/** Samples per pixel by PNG color type: gray, -, RGB, palette, gray+alpha, -, RGBA. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** The bit depths the PNG specification allows for each color type. */
const DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/**
 * The most pixels an image may declare: 2^26 (67 million, over three times a 4,000 x 5,000
 * radiograph). Checked before anything is allocated, so a small file cannot ask for gigabytes.
 */
export const MAX_IMAGE_PIXELS = 2 ** 26;

/** Throws unless `width x height` is a real image within {@link MAX_IMAGE_PIXELS}. */
export function checkImageSize(width: number, height: number, kind: string): void {
  if (width < 1 || height < 1) {
    throw new Error(`${kind} declares an empty ${width}x${height} image`);
  }
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new Error(
      `${kind} declares ${width}x${height} pixels, more than the ${MAX_IMAGE_PIXELS} allowed`,
    );
  }
}

/**
 * Decodes a non-interlaced PNG of any color type and bit depth to 8-bit gray: color becomes
 * luma (BT.601 weights), alpha is composited over black (a radiograph's empty background is
 * dark), and 16-bit gray is scaled by its `sBIT` significant bits when present. Returns null
 * for interlaced files (rare; the caller falls back to imagescript) and for non-PNG bytes;
 * throws on a corrupt or truncated file.
 */
export function decodePng(bytes: Uint8Array): GrayImage | null {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, colorType = -1, depth = 8, sigBits = 0;
  let palette: Uint8Array | null = null, alphas: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let at = 8;
  for (;;) {
    if (at + 8 > bytes.length) throw new Error("truncated PNG (no IEND chunk)");
    const len = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (data.length < len || at + 12 + len > bytes.length) {
      throw new Error(`truncated PNG (${type} chunk cut short)`);
    }
    if (crc32(bytes.subarray(at + 4, at + 8 + len)) !== view.getUint32(at + 8 + len)) {
      throw new Error(`PNG ${type} chunk at byte ${at} fails its CRC check`);
    }
    if (type === "IHDR") {
      if (len !== 13) throw new Error(`PNG IHDR chunk has ${len} bytes, not 13`);
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      depth = data[8];
      colorType = data[9];
      if (CHANNELS[colorType] === undefined) throw new Error(`bad PNG color type ${colorType}`);
      if (!DEPTHS[colorType].includes(depth)) {
        throw new Error(`PNG bit depth ${depth} is not allowed for color type ${colorType}`);
      }
      checkImageSize(width, height, "PNG");
      // Interlaced: imagescript decodes it, within the size just checked.
      if (data[12] !== 0) return null;
    } else if (type === "sBIT") sigBits = Math.min(depth, Math.max(1, data[0]));
    else if (type === "PLTE") palette = data;
    else if (type === "tRNS") alphas = data;
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    at += 12 + len;
  }
  if (width === 0 || height === 0) throw new Error("PNG without IHDR");
  if (colorType === 3 && !palette) throw new Error("palette PNG without PLTE chunk");
  const channels = CHANNELS[colorType];
  const bpp = Math.max(1, (channels * depth) >> 3);
  const stride = Math.ceil((width * channels * depth) / 8);
  const expected = height * (stride + 1);
  let raw: Uint8Array;
  try {
    // Bounded by the size the header implies: a few bytes cannot inflate to gigabytes.
    raw = new Uint8Array(inflateSync(concat(idat), { maxOutputLength: expected + stride + 1 }));
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new Error(
      code === "ERR_BUFFER_TOO_LARGE"
        ? `PNG image data inflates to more than the ${expected} bytes its header implies`
        : `PNG image data does not inflate: ${(e as Error).message}`,
    );
  }
  if (raw.length < expected) throw new Error("truncated PNG image data");
  unfilter(raw, height, stride, bpp);
  const out = new Uint8Array(width * height);
  if (depth === 8 && colorType === 0) {
    // The common radiograph case: the unfiltered rows are the answer.
    for (let y = 0; y < height; y++) {
      out.set(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)), y * width);
    }
    return { width, height, data: out };
  }
  const max = 2 ** depth - 1;
  const gbits = colorType === 0 && sigBits ? sigBits : depth;
  const gshift = depth - gbits, gmax = 2 ** gbits - 1;
  let row = 0;
  // Sample k of pixel x in the current row, whatever the bit depth.
  const sample = (x: number, k: number): number => {
    const i = x * channels + k;
    if (depth === 8) return raw[row + i];
    if (depth === 16) return (raw[row + 2 * i] << 8) | raw[row + 2 * i + 1];
    const bit = i * depth;
    return (raw[row + (bit >> 3)] >> (8 - depth - (bit & 7))) & max;
  };
  const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;
  for (let y = 0; y < height; y++) {
    row = y * (stride + 1) + 1;
    for (let x = 0; x < width; x++) {
      let v: number, a = 1;
      if (colorType === 3) {
        const p = sample(x, 0);
        if (3 * p + 2 >= palette!.length) {
          throw new Error(
            `PNG pixel (${x}, ${y}) uses palette entry ${p} of ${palette!.length / 3}`,
          );
        }
        v = luma(palette![3 * p], palette![3 * p + 1], palette![3 * p + 2]) / 255;
        if (alphas && p < alphas.length) a = alphas[p] / 255;
      } else if (colorType === 0 || colorType === 4) {
        v = (sample(x, 0) >>> gshift) / gmax;
        if (colorType === 4) a = sample(x, 1) / max;
      } else {
        v = luma(sample(x, 0), sample(x, 1), sample(x, 2)) / max;
        if (colorType === 6) a = sample(x, 3) / max;
      }
      out[y * width + x] = Math.min(255, Math.round(v * a * 255));
    }
  }
  return { width, height, data: out };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Undoes PNG's per-row filters in place (rows keep their leading filter byte). One loop per
 * filter type: a predictor call per byte would dominate decoding of large radiographs.
 */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number): void {
  const line = stride + 1;
  for (let y = 0; y < height; y++) {
    const cur = y * line + 1;
    const prev = cur - line;
    const filter = raw[cur - 1];
    const up = y > 0;
    if (filter === 0 || (filter === 2 && !up)) continue;
    if (filter === 1 || (filter === 4 && !up)) {
      for (let i = bpp; i < stride; i++) raw[cur + i] = (raw[cur + i] + raw[cur + i - bpp]) & 255;
    } else if (filter === 2) {
      for (let i = 0; i < stride; i++) raw[cur + i] = (raw[cur + i] + raw[prev + i]) & 255;
    } else if (filter === 3) {
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? raw[cur + i - bpp] : 0;
        raw[cur + i] = (raw[cur + i] + ((a + (up ? raw[prev + i] : 0)) >>> 1)) & 255;
      }
    } else if (filter === 4) {
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? raw[cur + i - bpp] : 0;
        const b = raw[prev + i];
        const c = i >= bpp ? raw[prev + i - bpp] : 0;
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        raw[cur + i] = (raw[cur + i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
      }
    } else throw new Error(`bad PNG filter type ${filter} on row ${y}`);
  }
}

/** PNG filter predictor from left (a), up (b) and up-left (c). */
function predict(filter: number, a: number, b: number, c: number): number {
  switch (filter) {
    case 1:
      return a;
    case 2:
      return b;
    case 3:
      return (a + b) >>> 1;
    case 4: {
      const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    default:
      return 0;
  }
}

/** Encodes an 8-bit RGB PNG (color type 2) from `width*height*3` bytes (heatmaps, previews). */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const stride = 1 + width * 3;
  const raw = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * stride + 1);
  }
  return assemblePng([
    ["IHDR", ihdrData(width, height, 8, 2)],
    ["IDAT", new Uint8Array(deflateSync(raw))],
    ["IEND", new Uint8Array()],
  ]);
}
