/**
 * Image decoding to one gray channel and the letterbox resize to the model's square input.
 *
 * @module
 */
import { checkImageSize, decodePng, type GrayImage } from "./png.ts";

export type { GrayImage } from "./png.ts";

/** Bumped whenever decoding or resizing changes its output, so caches rebuild. */
export const PREPROCESS_VERSION = 1;

/** The largest image file read (256 MiB: a 16-bit 4,000 x 5,000 radiograph is 40 MB raw). */
export const MAX_IMAGE_FILE_BYTES = 256 * 2 ** 20;

/** Reads an image file, refusing one larger than {@link MAX_IMAGE_FILE_BYTES} before reading it. */
export async function readImageFile(path: string): Promise<Uint8Array> {
  const { size } = await Deno.stat(path);
  if (size > MAX_IMAGE_FILE_BYTES) {
    throw new Error(`${size} bytes, more than the ${MAX_IMAGE_FILE_BYTES} an image may have`);
  }
  return await Deno.readFile(path);
}

/** The file kind judged from its first bytes, whatever its extension says. */
export function sniffFormat(bytes: Uint8Array): "png" | "jpeg" | "unknown" {
  if (bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return "jpeg";
  return "unknown";
}

/** imagescript's wasm JPEG decoder (`format`: 0 gray, 1 RGB, 2 CMYK). */
interface JpegCodec {
  decode(bytes: Uint8Array): { width: number; height: number; format: number; buffer: Uint8Array };
}

/** imagescript's wasm PNG decoder (RGBA out). */
interface PngCodec {
  decode(bytes: Uint8Array): { width: number; height: number; framebuffer: Uint8Array };
}

let jpegCodec: Promise<JpegCodec> | null = null;
let pngCodec: Promise<PngCodec> | null = null;

/**
 * Loads one of imagescript's wasm decoders on first use. They are imported by path, not via
 * the package entry, which loads a native addon and would need --allow-ffi; they read the
 * environment variable IMAGESCRIPT_WASM_SIMD, so JPEG (and interlaced PNG) needs --allow-env.
 */
async function wasmCodec<T>(kind: "jpeg" | "png"): Promise<T> {
  try {
    const mod = kind === "jpeg"
      ? await import("imagescript/wasm/node/jpeg.js")
      : await import("imagescript/wasm/node/png.js");
    return await (mod.default as { init(): Promise<T> }).init();
  } catch (e) {
    // In a browser there is no Deno namespace: let the real error through.
    const errors = (globalThis as { Deno?: typeof Deno }).Deno?.errors;
    if (errors && (e instanceof errors.NotCapable || e instanceof errors.PermissionDenied)) {
      throw new PermissionError(
        `decoding ${kind === "jpeg" ? "JPEG" : "interlaced PNG"} needs --allow-env ` +
          `(imagescript reads IMAGESCRIPT_WASM_SIMD): ${(e as Error).message}`,
      );
    }
    throw e;
  }
}

/** A missing permission: fatal for the whole load, unlike a bad file. */
export class PermissionError extends Error {
  /** Wraps the message; the name lets workers' callers recognise it. */
  constructor(message: string) {
    super(message);
    this.name = "PermissionError";
  }
}

function rgbaToGray(width: number, height: number, rgba: Uint8Array): GrayImage {
  if (rgba.length < width * height * 4) throw new Error("truncated image data");
  const data = new Uint8Array(width * height);
  for (let i = 0, o = 0; i < data.length; i++, o += 4) {
    const y = 0.299 * rgba[o] + 0.587 * rgba[o + 1] + 0.114 * rgba[o + 2];
    data[i] = Math.round((y * rgba[o + 3]) / 255);
  }
  return { width, height, data };
}

/**
 * Decodes a PNG (any color type and depth; see {@link decodePng}) or a JPEG (gray, RGB,
 * CMYK) to 8-bit gray. Throws on a corrupt, truncated or unsupported file, and a
 * {@link PermissionError} when a decoder cannot be loaded for lack of permissions.
 */
export async function decodeGray(bytes: Uint8Array): Promise<GrayImage> {
  const format = sniffFormat(bytes);
  if (format === "unknown") throw new Error("not a PNG or JPEG file");
  if (format === "png") {
    const gray = decodePng(bytes);
    if (gray) return gray;
    pngCodec ??= wasmCodec<PngCodec>("png");
    const { width, height, framebuffer } = (await pngCodec).decode(bytes);
    return rgbaToGray(width, height, framebuffer);
  }
  const { width: w, height: h } = jpegSize(bytes);
  checkImageSize(w, h, "JPEG");
  jpegCodec ??= wasmCodec<JpegCodec>("jpeg");
  const { width, height, format: kind, buffer } = (await jpegCodec).decode(bytes);
  const data = new Uint8Array(width * height);
  const ch = kind === 0 ? 1 : kind === 1 ? 3 : 4;
  if (buffer.length < data.length * ch) throw new Error("truncated JPEG data");
  for (let i = 0, o = 0; i < data.length; i++, o += ch) {
    if (kind === 0) data[i] = buffer[o];
    else if (kind === 1) {
      data[i] = Math.round(0.299 * buffer[o] + 0.587 * buffer[o + 1] + 0.114 * buffer[o + 2]);
    } else {
      // Inverted CMYK (Adobe), converted as imagescript does.
      const k = 1 - buffer[o + 3] / 255;
      const c = (v: number) => 255 * (1 - v / 255) * k;
      data[i] = Math.round(
        0.299 * c(buffer[o]) + 0.587 * c(buffer[o + 1]) + 0.114 * c(buffer[o + 2]),
      );
    }
  }
  return { width, height, data };
}

/**
 * Width and height from a JPEG's frame header (SOF0..SOF15 but DHT, JPG and DAC), read
 * before decoding so the size can be checked first. Throws when there is none before the
 * scan data.
 */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) throw new Error(`JPEG marker expected at byte ${at}`);
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2; // markers without a length
      continue;
    }
    const length = (bytes[at + 2] << 8) | bytes[at + 3];
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return {
        height: (bytes[at + 5] << 8) | bytes[at + 6],
        width: (bytes[at + 7] << 8) | bytes[at + 8],
      };
    }
    if (marker === 0xda || length < 2) break;
    at += 2 + length;
  }
  throw new Error("JPEG without a frame header (SOF) before its image data");
}

/** Where the image lands inside the square: offset and size of the scaled content. */
export interface LetterboxBox {
  /** Left column of the content. */
  x: number;
  /** Top row of the content. */
  y: number;
  /** Content width in pixels. */
  width: number;
  /** Content height in pixels. */
  height: number;
}

/** The content box of a `width x height` image letterboxed into `size x size` (centred). */
export function letterboxBox(width: number, height: number, size: number): LetterboxBox {
  const scale = size / Math.max(width, height);
  const w = Math.max(1, Math.min(size, Math.round(width * scale)));
  const h = Math.max(1, Math.min(size, Math.round(height * scale)));
  return { x: (size - w) >> 1, y: (size - h) >> 1, width: w, height: h };
}

/** Per output sample: first input index and the weights of the inputs from there on. */
interface Taps {
  start: Int32Array;
  count: Int32Array;
  offset: Int32Array;
  weights: Float32Array;
}

/**
 * Resampling weights along one axis: area averaging when shrinking (every input pixel
 * contributes by its overlap, which is what keeps a 2080-row radiograph at 96 rows free of
 * aliasing), bilinear when enlarging.
 */
function axisTaps(n: number, m: number): Taps {
  const start = new Int32Array(m), count = new Int32Array(m), offset = new Int32Array(m);
  const weights: number[] = [];
  const f = n / m;
  for (let j = 0; j < m; j++) {
    offset[j] = weights.length;
    if (f >= 1) {
      const a = j * f, b = a + f;
      const i0 = Math.floor(a), i1 = Math.min(n, Math.ceil(b - 1e-9));
      start[j] = i0;
      for (let i = i0; i < i1; i++) weights.push((Math.min(b, i + 1) - Math.max(a, i)) / f);
    } else {
      const x = Math.min(n - 1, Math.max(0, (j + 0.5) * f - 0.5));
      const i0 = Math.min(n - 2, Math.floor(x));
      const t = x - i0;
      start[j] = Math.max(0, i0);
      if (n === 1) weights.push(1);
      else weights.push(1 - t, t);
    }
    count[j] = weights.length - offset[j];
  }
  return { start, count, offset, weights: new Float32Array(weights) };
}

/** Resizes a gray image to exactly `w x h` with {@link axisTaps} weights (separable). */
export function resizeGray(src: GrayImage, w: number, h: number): Float32Array {
  const tx = axisTaps(src.width, w), ty = axisTaps(src.height, h);
  const { start: xs, count: xc, offset: xo, weights: xw } = tx;
  const data = src.data, sw = src.width;
  const tmp = new Float32Array(src.height * w);
  for (let y = 0; y < src.height; y++) {
    const row = y * sw;
    for (let x = 0; x < w; x++) {
      let acc = 0;
      const s = row + xs[x], o = xo[x], n = xc[x];
      for (let k = 0; k < n; k++) acc += data[s + k] * xw[o + k];
      tmp[y * w + x] = acc;
    }
  }
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const o = ty.offset[y], n = ty.count[y], base = y * w;
    for (let k = 0; k < n; k++) {
      const wt = ty.weights[o + k], r = (ty.start[y] + k) * w;
      for (let x = 0; x < w; x++) out[base + x] += tmp[r + x] * wt;
    }
  }
  return out;
}

/**
 * Fits a gray image into a `size x size` square keeping its aspect ratio: scaled so the
 * longer side fills the square, centred, the rest filled with `pad` (not stretched).
 */
export function letterbox(src: GrayImage, size: number, pad = 0): Uint8Array {
  const box = letterboxBox(src.width, src.height, size);
  const scaled = resizeGray(src, box.width, box.height);
  const out = new Uint8Array(size * size).fill(pad);
  for (let y = 0; y < box.height; y++) {
    for (let x = 0; x < box.width; x++) {
      const v = scaled[y * box.width + x];
      out[(box.y + y) * size + box.x + x] = v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0;
    }
  }
  return out;
}

/**
 * How a radiograph becomes a square: `letterbox` keeps its aspect ratio (black bars), `stretch`
 * resizes each axis to the side, as the RSNA 100 px copies were made, so a full-size
 * radiograph and its 100 px copy give the same square.
 */
export type Fit = "letterbox" | "stretch";

/** Resizes a gray image into a `size x size` square the way `fit` says. */
export function fitSquare(src: GrayImage, size: number, fit: Fit, pad = 0): Uint8Array {
  if (fit === "letterbox") return letterbox(src, size, pad);
  return Uint8Array.from(
    resizeGray(src, size, size),
    (v) => v <= 0 ? 0 : v >= 255 ? 255 : (v + 0.5) | 0,
  );
}

/** Decoding plus fitting: file bytes to the model's `size x size` gray input. */
export async function preprocessImage(
  bytes: Uint8Array,
  size: number,
  pad = 0,
  fit: Fit = "letterbox",
): Promise<{ pixels: Uint8Array; width: number; height: number }> {
  const img = await decodeGray(bytes);
  return { pixels: fitSquare(img, size, fit, pad), width: img.width, height: img.height };
}
