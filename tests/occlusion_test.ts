/**
 * The occlusion heatmap as `predict --heatmap` writes it and the reader page draws it: over
 * the radiograph at the radiograph's own aspect and resolution (capped), not the model input.
 */
import assert from "node:assert/strict";
import { letterboxBox } from "../src/data/image.ts";
import { HEATMAP_MAX_SIDE, occlusionOverlay, renderHeatmapPng } from "../src/app/occlusion.ts";

/** Width and height from a PNG's IHDR. */
function pngSize(png: Uint8Array): [number, number] {
  const view = new DataView(png.buffer, png.byteOffset);
  return [view.getUint32(16), view.getUint32(20)];
}

/** A map whose upper half raised the estimate (positive) and lower half lowered it. */
function halfMap(cells = 12) {
  const values = new Float32Array(cells * cells);
  for (let i = 0; i < values.length; i++) values[i] = Math.floor(i / cells) < cells / 2 ? 5 : -5;
  return { cells, values };
}

const gray = (width: number, height: number) => ({
  width,
  height,
  data: Uint8Array.from({ length: width * height }, (_, i) => 40 + (i % 97)),
});

Deno.test("predict's heatmap has the radiograph's own size, capped at HEATMAP_MAX_SIDE", () => {
  assert.deepEqual(pngSize(renderHeatmapPng(gray(301, 497), 96, halfMap())), [301, 497]);
  const big = renderHeatmapPng(gray(1600, 2080), 96, halfMap());
  assert.deepEqual(pngSize(big), [Math.round(1600 * HEATMAP_MAX_SIDE / 2080), HEATMAP_MAX_SIDE]);
});

Deno.test("the overlay maps display pixels through the letterbox: red above, blue below", () => {
  const [w, h] = [200, 400]; // a tall radiograph: letterboxed with side bars, full height
  const box = letterboxBox(w, h, 96);
  const rgba = occlusionOverlay(halfMap(), box, 96, w, h);
  const at = (x: number, y: number) => [...rgba.subarray((y * w + x) * 4, (y * w + x) * 4 + 4)];
  const top = at(100, 20), bottom = at(100, 380);
  assert.deepEqual(top.slice(0, 3), [255, 40, 40]);
  assert.deepEqual(bottom.slice(0, 3), [40, 90, 255]);
  assert.ok(top[3] > 100 && bottom[3] > 100, "strongest where the change is largest");
  // Half-way down the radiograph is half-way down the map, where the two halves meet.
  assert.ok(at(100, 200)[3] < top[3] / 2, "fades across the border between the halves");
});
