/**
 * Decoding (8/16-bit gray, every PNG filter, palette, JPEG), letterbox geometry and
 * anti-aliased downscaling.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { decodeGray, letterbox, letterboxBox, preprocessImage } from "../src/data/image.ts";
import { decodePng, encodeGrayPng } from "../src/data/png.ts";

const SHARED = new URL("../../shared/data/", import.meta.url).pathname;
const FULLRES = join(SHARED, "rsna-fullres-sample");
const hasFullres = (() => {
  try {
    return Deno.statSync(FULLRES).isDirectory;
  } catch {
    return false;
  }
})();

// 16x8 JPEG (left half gray 50, right half gray 200) and 8x8 pure red, written by jpeg-js.
const JPEG_GRAY =
  "/9j/4AAQSkZJRgABAQAAAQABAAD/2wCEAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgoBAgICAgICBQMDBQoHBgcKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCv/AABEIAAgAEAMBEQACEQEDEQH/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+gEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoLEQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/APzHoA/pYoA//9k=";
const JPEG_RED =
  "/9j/4AAQSkZJRgABAQAAAQABAAD/2wCEAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgoBAgICAgICBQMDBQoHBgcKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCv/AABEIAAgACAMBEQACEQEDEQH/xAGiAAABBQEBAQEBAQAAAAAAAAAAAQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+gEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoLEQACAQIEBAMEBwUEBAABAncAAQIDEQQFITEGEkFRB2FxEyIygQgUQpGhscEJIzNS8BVictEKFiQ04SXxFxgZGiYnKCkqNTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqCg4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2dri4+Tl5ufo6ery8/T19vf4+fr/2gAMAwEAAhEDEQA/APi+v5TP9/D/AP/Z";
const b64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

Deno.test("8-bit gray PNG round-trips exactly through every row filter", () => {
  const w = 13, h = 7;
  const px = Array.from({ length: w * h }, (_, i) => (i * 37 + (i >> 3) * 11) & 255);
  for (const filter of [0, 1, 2, 3, 4] as const) {
    const img = decodePng(encodeGrayPng(px, w, h, { filter }))!;
    assert.equal(img.width, w);
    assert.equal(img.height, h);
    assert.deepEqual(Array.from(img.data), px, `filter ${filter}`);
  }
});

Deno.test("16-bit gray PNG keeps its precision; sBIT 12-bit data is scaled to full range", async () => {
  const w = 16, h = 4;
  const v16 = Array.from({ length: w * h }, (_, i) => (i * 1031 + 7) & 0xffff);
  for (const filter of [0, 4] as const) {
    const img = await decodeGray(encodeGrayPng(v16, w, h, { depth: 16, filter }));
    assert.deepEqual(Array.from(img.data), v16.map((v) => Math.round((v / 65535) * 255)));
  }
  // 12-bit data stored in 16 bits the way the PNG spec says: shifted up, announced by sBIT.
  const v12 = Array.from({ length: w * h }, (_, i) => (i * 67) % 4096);
  const stored = v12.map((v) => (v << 4) | (v >> 8));
  const img = await decodeGray(encodeGrayPng(stored, w, h, { depth: 16, significantBits: 12 }));
  assert.deepEqual(Array.from(img.data), v12.map((v) => Math.round((v / 4095) * 255)));
});

Deno.test("JPEG (gray content and color) decodes to luma", async () => {
  const gray = await decodeGray(b64(JPEG_GRAY));
  assert.equal(gray.width, 16);
  assert.equal(gray.height, 8);
  for (let y = 0; y < 8; y++) {
    assert(Math.abs(gray.data[y * 16 + 2] - 50) <= 3, `left ${gray.data[y * 16 + 2]}`);
    assert(Math.abs(gray.data[y * 16 + 13] - 200) <= 3, `right ${gray.data[y * 16 + 13]}`);
  }
  const red = await decodeGray(b64(JPEG_RED));
  // Pure red has BT.601 luma 0.299 * 255 = 76.
  assert(red.data.every((v) => Math.abs(v - 76) <= 4), `red luma ${red.data[0]}`);
});

Deno.test("garbage and truncated files throw", async () => {
  const png = encodeGrayPng(
    Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24),
    64,
    64,
  );
  await assert.rejects(() => decodeGray(png.subarray(0, png.length - 200)));
  await assert.rejects(() => decodeGray(png.subarray(0, 30)));
  await assert.rejects(() => decodeGray(new TextEncoder().encode("hello")), /not a PNG or JPEG/);
  const bad = png.slice();
  bad[60] ^= 0xff; // inside the compressed stream
  await assert.rejects(() => decodeGray(bad));
});

Deno.test("letterbox pads a non-square image instead of stretching it", () => {
  const wide = { width: 40, height: 20, data: new Uint8Array(800).fill(200) };
  assert.deepEqual(letterboxBox(40, 20, 32), { x: 0, y: 8, width: 32, height: 16 });
  const out = letterbox(wide, 32, 7);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      assert.equal(out[y * 32 + x], y >= 8 && y < 24 ? 200 : 7, `(${x},${y})`);
    }
  }
  // Portrait, like the 1600x2080 radiographs: columns are padded, centred.
  assert.deepEqual(letterboxBox(1600, 2080, 96), { x: 11, y: 0, width: 74, height: 96 });
  const tall = { width: 20, height: 40, data: new Uint8Array(800) };
  for (let y = 0; y < 40; y++) tall.data.fill(y < 20 ? 0 : 255, y * 20, y * 20 + 20);
  const t = letterbox(tall, 16);
  assert.equal(t[0 * 16 + 2], 0, "left padding");
  assert.equal(t[15 * 16 + 13], 0, "right padding");
  assert.equal(t[15 * 16 + 8], 255, "bottom half of the content stays bright");
  assert.equal(t[0 * 16 + 8], 0, "top half of the content stays dark");
});

Deno.test("downscaling averages areas (no aliasing); upscaling keeps flat regions flat", () => {
  // One-pixel checkerboard: point sampling would give 0 or 255, area averaging ~127.
  const w = 1600, h = 2080;
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = (x + y) & 1 ? 255 : 0;
  const out = letterbox({ width: w, height: h, data }, 96);
  const box = letterboxBox(w, h, 96);
  for (let y = 0; y < 96; y++) {
    for (let x = box.x; x < box.x + box.width; x++) {
      assert(Math.abs(out[y * 96 + x] - 127.5) <= 2, `(${x},${y}) = ${out[y * 96 + x]}`);
    }
  }
  const up = letterbox({ width: 10, height: 10, data: new Uint8Array(100).fill(90) }, 96);
  assert(up.every((v) => v === 90));
});

Deno.test({
  name: "shared palette PNG 4533.png matches imagescript's decoder and letterboxes",
  ignore: !hasFullres,
  fn: async () => {
    const bytes = await Deno.readFile(join(FULLRES, "boneage-test-dataset", "4533.png"));
    assert.equal(bytes[25], 3, "the file is a palette PNG");
    const mine = decodePng(bytes)!;
    assert.equal(mine.width, 1600);
    assert.equal(mine.height, 2080);
    const ref = (await import("imagescript/wasm/node/png.js")).default as {
      init(): Promise<{ decode(b: Uint8Array): { framebuffer: Uint8Array } }>;
    };
    const rgba = (await ref.init()).decode(bytes).framebuffer;
    let diff = 0, sum = 0;
    for (let i = 0; i < mine.data.length; i++) {
      const o = 4 * i;
      const y = 0.299 * rgba[o] + 0.587 * rgba[o + 1] + 0.114 * rgba[o + 2];
      diff = Math.max(diff, Math.abs(mine.data[i] - y));
      sum += mine.data[i];
    }
    assert(diff <= 0.5, `max difference ${diff}`);
    assert(sum / mine.data.length > 10, "not a black image");
    const { pixels, width, height } = await preprocessImage(bytes, 96);
    assert.deepEqual([width, height, pixels.length], [1600, 2080, 96 * 96]);
    // 1600x2080 -> 74x96 content: the 11 left and right columns are padding.
    for (let y = 0; y < 96; y++) assert.equal(pixels[y * 96 + 5] + pixels[y * 96 + 90], 0);
  },
});
