import assert from "node:assert/strict";
import {
  augmentPoint,
  drawAugments,
  IDENTITY,
  packParams,
  PARAM_HEADER,
} from "../src/ops/augment.ts";
import { equalizationTable, looksInverted, stretchTable } from "../src/data/intensity.ts";
import { readKeypoints } from "../src/data/keypoints.ts";
import { CANONICAL, LEGACY_RECIPE, parseRecipe, registeredRecipe } from "../src/data/recipe.ts";
import { augmentReference } from "../src/ref/augment.ts";
import { applySimilarity, fitSimilarity, pixelAffine } from "../src/app/registration.ts";
import { rng, throwsWith } from "./helpers.ts";

/** The canonical points moved by a similarity `z = a + ib`, `t`, as 6 frame fractions. */
function movedCanonical(a: number, b: number, tx: number, ty: number): number[] {
  return CANONICAL.flatMap(([x, y]) => [a * x - b * y + tx, b * x + a * y + ty]);
}

Deno.test("fitSimilarity recovers a similarity exactly and measures a misfit", () => {
  const r = rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const angle = (r() - 0.5) * 2, scale = 0.4 + r();
    const a = scale * Math.cos(angle), b = scale * Math.sin(angle);
    const tx = r() - 0.5, ty = r() - 0.5;
    const { sim, residual } = fitSimilarity(movedCanonical(a, b, tx, ty));
    for (const [got, want] of [[sim.a, a], [sim.b, b], [sim.tx, tx], [sim.ty, ty]]) {
      assert.ok(Math.abs(got - want) < 1e-12, `${got} vs ${want}`);
    }
    assert.ok(residual < 1e-12);
  }
  // Moving one point off the triangle by 10% of the hand length leaves a residual of that order.
  const off = movedCanonical(1, 0, 0, 0);
  off[2] += 0.07;
  const { residual } = fitSimilarity(off);
  assert.ok(residual > 0.03 && residual < 0.1, `residual ${residual}`);
});

Deno.test("pixelAffine takes model-input pixels to the stored pixels the similarity names", () => {
  const size = 37;
  const sim = { a: 0.61, b: -0.23, tx: 0.17, ty: 0.09 };
  for (const mirrored of [false, true]) {
    const m = pixelAffine(sim, size, mirrored);
    for (const [qx, qy] of [[0, 0], [5, 31], [36, 17]]) {
      const [fx, fy] = applySimilarity(sim, (qx + 0.5) / size, (qy + 0.5) / size);
      const px = m[0] * qx + m[1] * qy + m[2], py = m[3] * qx + m[4] * qy + m[5];
      const wantX = mirrored ? size - 1 - (size * fx - 0.5) : size * fx - 0.5;
      assert.ok(Math.abs(px - wantX) < 1e-9 && Math.abs(py - (size * fy - 0.5)) < 1e-9);
    }
  }
});

Deno.test("augmentPoint is the forward map of the kernel's inverse affine, at any output side", () => {
  for (const [size, outSide] of [[23, 23], [41, 17]]) {
    const augs = drawAugments(3, 1, 4, true, size, {
      rotationDeg: 20,
      shift: 0.1,
      scale: 0.2,
      brightness: 0,
      contrast: [1, 1],
      gamma: [1, 1],
    });
    const params = packParams(augs, size, 0, 1, outSide);
    augs.forEach((a, j) => {
      const [fx, fy] = [0.31, 0.77];
      const [gx, gy] = augmentPoint(a, size, fx, fy);
      // The output pixel at (gx, gy) samples the input at (fx, fy).
      const qx = gx * outSide - 0.5, qy = gy * outSide - 0.5;
      const m = params.subarray(PARAM_HEADER + 12 * j);
      const px = m[0] * qx + m[1] * qy + m[2], py = m[3] * qx + m[4] * qy + m[5];
      assert.ok(Math.abs(px - (fx * size - 0.5)) < 1e-4, `x ${px} vs ${fx * size - 0.5}`);
      assert.ok(Math.abs(py - (fy * size - 0.5)) < 1e-4, `y ${py} vs ${fy * size - 0.5}`);
    });
  }
});

/** A dark image of side `size` with bright 3x3 dots at the given frame fractions. */
function dots(size: number, points: number[]): Uint8Array {
  const img = new Uint8Array(size * size).fill(3);
  for (let k = 0; k < points.length; k += 2) {
    const cx = Math.round(points[k] * size - 0.5), cy = Math.round(points[k + 1] * size - 0.5);
    for (let y = cy - 1; y <= cy + 1; y++) {
      for (let x = cx - 1; x <= cx + 1; x++) img[y * size + x] = 250;
    }
  }
  return img;
}

/** Centroid of the pixels above half brightness nearest to each of `near`, frame fractions. */
function dotCentres(values: Float64Array, size: number, near: readonly (readonly number[])[]) {
  return near.map(([nx, ny]) => {
    let sx = 0, sy = 0, w = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = values[y * size + x];
        const fx = (x + 0.5) / size, fy = (y + 0.5) / size;
        if (v > 0.3 && Math.hypot(fx - nx, fy - ny) < 0.12) {
          sx += v * fx;
          sy += v * fy;
          w += v;
        }
      }
    }
    return [sx / w, sy / w];
  });
}

Deno.test("a registration resampled by the kernel's twin brings the three points to CANONICAL", () => {
  const size = 61;
  for (const mirrored of [false, true]) {
    // A tilted, shrunk hand's points; on a right hand (mirrored) the thumb is on the left.
    const found = movedCanonical(0.62 * Math.cos(0.4), 0.62 * Math.sin(0.4), 0.21, 0.05);
    const stored = mirrored ? found.map((v, i) => (i % 2 === 0 ? 1 - v : v)) : found;
    const reg = pixelAffine(fitSimilarity(found).sim, size, mirrored);
    const params = packParams([IDENTITY], size, 0, 1, size, [reg]);
    const out = augmentReference(dots(size, stored), params, size);
    for (const [k, [x, y]] of dotCentres(out.map((v) => v), size, CANONICAL).entries()) {
      const [cx, cy] = CANONICAL[k];
      assert.ok(Math.hypot(x - cx, y - cy) < 0.02, `point ${k} at ${x},${y}, want ${cx},${cy}`);
    }
  }
});

Deno.test("equalization gives the same image under any monotone exposure change", () => {
  const size = 45;
  const r = rng(11);
  // 50 distinct levels, so that the exposure changes below keep them distinct in 8 bits.
  const levels = Array.from({ length: 50 }, (_, i) => 50 + 3 * i);
  const img = Uint8Array.from({ length: size * size }, () => levels[Math.floor(r() * 50)]);
  const reg = pixelAffine({ a: 0.7, b: 0.1, tx: 0.1, ty: 0.12 }, size);
  const base = equalizationTable(img, size, reg);
  const baseOut = Array.from(img, (v) => base[v]);
  for (
    const change of [
      (v: number) => Math.pow(v, 0.7),
      (v: number) => Math.pow(v, 1.4),
      (v: number) => (v - 0.5) * 1.25 + 0.5,
      (v: number) => (v - 0.5) * 0.8 + 0.45,
    ]
  ) {
    const changed = img.map((v) => Math.round(255 * Math.min(1, Math.max(0, change(v / 255)))));
    const lut = equalizationTable(changed, size, reg);
    assert.deepEqual(Array.from(changed, (v) => lut[v]), baseOut);
  }
  // Only the registered region counts: pixels outside it do not change the table.
  const outside = img.slice();
  outside[size * size - 1] = 255; // the corner, far outside the shrunk frame
  assert.deepEqual(equalizationTable(outside, size, reg), base);
});

Deno.test("stretch: background to 0, bright bone to 255, the same image under brightness and contrast", () => {
  const size = 47;
  const r = rng(12);
  const band = Math.round(0.08 * size); // borderMedian's ring
  // A dark, slightly noisy background ring around a "hand" of levels 70..229.
  const img = Uint8Array.from({ length: size * size }, (_, i) => {
    const x = i % size, y = Math.floor(i / size);
    const ring = x < band || y < band || x >= size - band || y >= size - band;
    return ring ? 37 + Math.floor(r() * 3) : 70 + Math.floor(r() * 160);
  });
  const reg = pixelAffine({ a: 0.8, b: -0.05, tx: 0.08, ty: 0.1 }, size);
  const base = stretchTable(img, size, reg);
  assert.equal(base[38], 0, "the background's median goes to black");
  assert.equal(base[36], 0, "below the background stays black");
  assert.equal(base[255], 255);
  const top = base.indexOf(255);
  assert.ok(top > 200 && top < 230, `the top is the 98th percentile of the hand, got ${top}`);
  const baseOut = Array.from(img, (v) => base[v]);
  for (
    const change of [
      (v: number) => (v - 0.5) * 1.25 + 0.5,
      (v: number) => (v - 0.5) * 0.8 + 0.45,
      (v: number) => v + 0.06,
    ]
  ) {
    const changed = img.map((v) => Math.round(255 * Math.min(1, Math.max(0, change(v / 255)))));
    const lut = stretchTable(changed, size, reg);
    const out = Array.from(changed, (v) => lut[v]);
    const worst = Math.max(...out.map((v, i) => Math.abs(v - baseOut[i])));
    // Only the 8-bit rounding of the changed image differs: about a level, scaled by the span.
    assert.ok(worst <= 3, `a linear exposure change moved a stretched pixel by ${worst} levels`);
  }
  // A gamma change keeps both ends: background black, the top white.
  const gamma = img.map((v) => Math.round(255 * Math.pow(v / 255, 1.4)));
  const g = stretchTable(gamma, size, reg);
  assert.equal(g[Math.round(255 * Math.pow(38 / 255, 1.4))], 0);
  assert.equal(g[Math.round(255 * Math.pow(top / 255, 1.4))], 255);
  // A flat image does not divide by zero: the span is at least 8 levels.
  const flat = stretchTable(new Uint8Array(size * size).fill(100), size, reg);
  assert.deepEqual([flat[100], flat[104], flat[108]], [0, 128, 255]);
});

Deno.test("looksInverted reads the border: dark background is upright, bright is inverted", () => {
  const size = 33;
  const img = new Uint8Array(size * size).fill(12);
  for (let y = 8; y < 25; y++) img.fill(200, y * size + 8, y * size + 25);
  assert.equal(looksInverted(img, size), false);
  assert.equal(looksInverted(img.map((v) => 255 - v), size), true);
});

Deno.test("parseRecipe: missing is legacy, a registered recipe round-trips, bad keys are named", () => {
  assert.deepEqual(parseRecipe(undefined, "x.json"), LEGACY_RECIPE);
  const recipe = registeredRecipe("equalize");
  assert.deepEqual(parseRecipe(JSON.parse(JSON.stringify(recipe)), "x.json"), recipe);
  throwsWith(() => parseRecipe({ ...recipe, fit: "crop" }, "x.json"), "x.json", "recipe.fit");
  throwsWith(
    () => parseRecipe({ ...recipe, intensity: "clahe" }, "x.json"),
    "x.json",
    "recipe.intensity",
  );
  throwsWith(
    () =>
      parseRecipe({ ...recipe, registration: { keypoints: "../../etc", canonical: [] } }, "x.json"),
    "recipe.registration.keypoints",
  );
  throwsWith(
    () =>
      parseRecipe({
        ...recipe,
        registration: { keypoints: "keypoints", canonical: [[0, 0], [1, 0], [0, 1]] },
      }, "x.json"),
    "recipe.registration.canonical",
    "retrain",
  );
  for (const intensity of ["equalize", "stretch"]) {
    throwsWith(
      () => parseRecipe({ ...LEGACY_RECIPE, intensity }, "x.json"),
      "needs a registration",
    );
  }
  const stretched = registeredRecipe("stretch");
  assert.deepEqual(parseRecipe(JSON.parse(JSON.stringify(stretched)), "x.json"), stretched);
});

Deno.test("readKeypoints keeps good rows and lists each bad one with its line and reason", async () => {
  const dir = await Deno.makeTempDir();
  const cols = ["middle_finger4", "thumb4", "wrist"].flatMap((k) => [`${k}_x`, `${k}_y`, `${k}_v`]);
  const head = ["id", "width", "height", "box_x", "box_y", "box_w", "box_h", ...cols].join(",");
  const good = "1,200,300,0,0,10,10,90,30,2,170,120,2,95,260,2";
  const path = `${dir}/k.csv`;
  await Deno.writeTextFile(
    path,
    [
      head,
      good,
      good, // duplicate id
      "2,200,300,0,0,10,10,90,30,2,270,120,2,95,260,2", // thumb outside the 200 px width
      "3,200,300,0,0,10,10,90,30,2,170,120,1,95,260,2", // thumb not labelled
      "4,0,300,0,0,10,10,90,30,2,170,120,2,95,260,2", // zero width
      "5,200,300,0,0,10,10,,,0,170,120,2,95,260,2", // middle fingertip missing
    ].join("\n") + "\n",
  );
  const { rows, skipped } = await readKeypoints(path);
  assert.deepEqual(rows.map((r) => r.id), ["1"]);
  assert.deepEqual(Array.from(rows[0].points), [0.45, 0.1, 0.85, 0.4, 0.475, 260 / 300]);
  assert.deepEqual(skipped.map((s) => [s.line, s.id]), [[3, "1"], [4, "2"], [5, "3"], [6, "4"], [
    7,
    "5",
  ]]);
  assert.match(skipped[0].reason, /duplicate/);
  assert.match(skipped[1].reason, /thumb4/);
  assert.match(skipped[3].reason, /size/);
  await Deno.writeTextFile(path, "id,width,height\n1,2,3\n");
  await assert.rejects(() => readKeypoints(path), /k\.csv.*middle_finger4_x/s);
  await Deno.remove(dir, { recursive: true });
});
