/**
 * The checkpoints shipped under `weights/`, on the real radiographs of `../shared/data`
 * (skipped when that is absent):
 * - the keypoint model reproduces its recorded held-out point error, finds the held-out hands,
 *   flips inverted copies back and refuses non-hands;
 * - the bone-age model reproduces every figure of the README's "Shipped weights" table within
 *   0.1 month, through `deno task eval` as a user runs it;
 * - gamma 0.7 / 1.4 and contrast 0.8 / 1.25 on the validation radiographs move its MAE and
 *   mean error by at most {@link MAX_SHIFT}, and at most 1% of the validation hands are refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ImageSet, mirroredImageSet, subsetImageSet } from "../src/data/dataset.ts";
import { decodeGray, fitSquare, readImageFile } from "../src/data/image.ts";
import { readKeypoints } from "../src/data/keypoints.ts";
import { loadImageSet } from "../src/data/load.ts";
import { readSplit } from "../src/data/split.ts";
import { KEYPOINT_SIDE, loadKeypointModel, predictKeypoints } from "../src/app/keypoints.ts";
import { loadRecipe, preparedCrop, prepareImageSet } from "../src/app/prepare.ts";
import { registeredRecipe } from "../src/data/recipe.ts";
import { findHands } from "../src/app/registration.ts";
import { loadCheckpoint } from "../src/app/checkpoint.ts";
import { predictMonths } from "../src/app/predict.ts";
import { PROJECT_ROOT, rng, runTaskProcess, testEngine } from "./helpers.ts";

const SHIPPED = `${PROJECT_ROOT}weights`;
const WEIGHTS = `${SHIPPED}/keypoints`;
const SHARED = `${PROJECT_ROOT}../shared/data`;
const present = await Deno.stat(`${SHARED}/hand-keypoints/hand-keypoints.csv`).then(
  () => true,
  () => false,
);

/** The held-out radiographs at `size` (stretched to squares, as the recipe stores them). */
async function heldOutSet(ids: string[], size: number): Promise<ImageSet> {
  const images = new Uint8Array(ids.length * size * size);
  for (const [i, id] of ids.entries()) {
    const gray = await decodeGray(
      await readImageFile(`${SHARED}/rsna-100px/boneage-training-dataset/${id}.png`),
    );
    images.set(fitSquare(gray, size, "stretch"), i * size * size);
  }
  return {
    size,
    ids,
    images,
    male: new Uint8Array(ids.length),
    boneage: new Float32Array(ids.length).fill(NaN),
  };
}

Deno.test({
  name: "weights/keypoints: reproduces its held-out error, finds hands, flips or refuses",
  ignore: !present,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const e = await testEngine();
    const finder = await loadKeypointModel(e, WEIGHTS);
    const { model, meta } = finder;
    const evaluation = meta.evaluation as { held_out_ids: string[]; mean_point_error_px: number };
    const ids = evaluation.held_out_ids;
    assert.ok(ids.length >= 60, `${ids.length} held-out rows`);
    const labels = new Map(
      (await readKeypoints(`${SHARED}/hand-keypoints/hand-keypoints.csv`)).rows.map((
        r,
      ) => [r.id, r]),
    );

    // The recorded figure, recomputed: 100 px images, error in their pixels.
    const small = await heldOutSet(ids, KEYPOINT_SIDE);
    const predicted = await predictKeypoints(
      model,
      meta.normalization,
      small,
      ids.map((_, i) => i),
    );
    let error = 0;
    ids.forEach((id, i) => {
      const truth = labels.get(id)!.points;
      for (let k = 0; k < 3; k++) {
        error += Math.hypot(
          predicted[6 * i + 2 * k] - truth[2 * k],
          predicted[6 * i + 2 * k + 1] - truth[2 * k + 1],
        ) * 100 / (3 * ids.length);
      }
    });
    assert.ok(
      Math.abs(error - evaluation.mean_point_error_px) < 0.05,
      `${error} px against the recorded ${evaluation.mean_point_error_px}`,
    );

    // At the bone-age model's side: the hands are found (as left hands).
    const set = await heldOutSet(ids, 96);
    const hands = await findHands(finder, set);
    const found = hands.filter((h) => h.registration && !h.mirrored).length;
    assert.ok(found >= 0.95 * ids.length, `${found} of ${ids.length} held-out hands found`);

    // All of them are left hands (their annotations say so); the handedness model takes the
    // few recorded (photographed films) for right hands. Mirrored, each gets the other answer,
    // and a right hand is registered to the crop of the left hand it mirrors.
    const side = meta.handedness!.evaluation as { annotated_wrong_ids: string[] };
    assert.deepEqual(
      ids.filter((_, i) => hands[i].mirrored),
      side.annotated_wrong_ids,
      "the left hands taken for right ones are those recorded",
    );
    assert.ok(side.annotated_wrong_ids.length <= 0.05 * ids.length);
    const rightSet = mirroredImageSet(set);
    const rights = await findHands(finder, rightSet);
    assert.deepEqual(rights.map((h) => h.mirrored), hands.map((h) => !h.mirrored));
    const registered = (images: Uint8Array, found: typeof hands): ImageSet => {
      const registration = new Float32Array(6 * found.length);
      found.forEach((h, i) => registration.set(h.registration ?? [1, 0, 0, 0, 1, 0], 6 * i));
      return { ...set, images, registration };
    };
    const leftCrops = registered(set.images, hands);
    const rightCrops = registered(rightSet.images, rights);
    let compared = 0;
    hands.forEach((h, i) => {
      if (h.mirrored || !h.registration || !rights[i].registration) return;
      const left = preparedCrop(leftCrops, i), right = preparedCrop(rightCrops, i);
      // The same image, to within the rounding of the resampling.
      let worst = 0;
      left.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - right[k]))));
      assert.ok(worst <= 1, `${ids[i]}: the right hand's crop differs by ${worst} gray levels`);
      compared++;
    });
    assert.ok(compared >= 0.9 * ids.length, `${compared} right hands registered`);

    // Inverted (MONOCHROME1-style) copies are flipped back and found.
    const inverted = { ...set, images: set.images.map((v) => 255 - v) };
    const recipe = { recipe: registeredRecipe("none"), keypoints: finder };
    const prep = await prepareImageSet(inverted, recipe);
    assert.ok(prep.inverted.filter(Boolean).length >= 0.95 * ids.length);
    // Flipped back, each is the upright image again: the same hands are found.
    const upright = await prepareImageSet(set, recipe);
    assert.deepEqual(prep.refused.map((r) => r.row), upright.refused.map((r) => r.row));
    assert.ok(upright.refused.length <= 0.1 * ids.length, `${upright.refused.length} refused`);

    // No hand: blank, flat grays, noise (as stored and resized from another size), a blob.
    const r = rng(5);
    const plane = 96 * 96;
    const noise = (w: number, h: number) =>
      fitSquare(
        { width: w, height: h, data: Uint8Array.from({ length: w * h }, () => r() * 256) },
        96,
        "stretch",
      );
    const fakes = [
      new Uint8Array(plane),
      new Uint8Array(plane).fill(127),
      new Uint8Array(plane).fill(128),
      noise(96, 96),
      noise(200, 160),
      noise(333, 517),
      Uint8Array.from({ length: plane }, (_, i) => {
        const x = (i % 96) / 96 - 0.5, y = Math.floor(i / 96) / 96 - 0.5;
        return Math.round(220 * Math.exp(-(x * x + y * y) * 12));
      }),
    ];
    const none = await prepareImageSet({
      ...set,
      ids: fakes.map((_, i) => `fake-${i}`),
      images: Uint8Array.from(fakes.flatMap((f) => Array.from(f))),
      male: new Uint8Array(fakes.length),
      boneage: new Float32Array(fakes.length),
    }, recipe);
    assert.deepEqual(none.refused.map((f) => f.row), fakes.map((_, i) => i));
  },
});

/** The rows of the README's "Shipped weights" table: eval arguments, n, MAE, mean error. */
async function readmeFigures(): Promise<
  { args: string[]; n: number; mae: number; bias: number }[]
> {
  const readme = await Deno.readTextFile(`${PROJECT_ROOT}README.md`);
  const section = readme.split(/^### /m).find((s) => s.startsWith("Shipped weights"));
  assert.ok(section, 'README.md has no "### Shipped weights" section');
  const rows = [
    ...section.matchAll(/^\| `([^`]+)` +\| +(\d+) +\| +([\d.]+) +\| +([+-]?[\d.]+) +\|/gm),
  ];
  return rows.map((m) => ({
    args: m[1].split(" "),
    n: Number(m[2]),
    mae: Number(m[3]),
    bias: Number(m[4]),
  }));
}

Deno.test({
  name: "weights: the bone-age model reproduces the README's figures through deno task eval",
  ignore: !present,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "bone-age-weights-" });
    try {
      for (const row of await readmeFigures()) {
        const r = await runTaskProcess("eval", [...row.args, "--json", "--out", out], [out]);
        assert.equal(r.code, 0, r.stderr);
        const got = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
        const what = `eval ${row.args.join(" ")}`;
        assert.equal(got.n, row.n, `${what}: ${got.n} radiographs scored, README says ${row.n}`);
        assert.ok(Math.abs(got.mae - row.mae) <= 0.1, `${what}: MAE ${got.mae}, README ${row.mae}`);
        assert.ok(
          Math.abs(got.bias - row.bias) <= 0.1,
          `${what}: mean error ${got.bias}, README ${row.bias}`,
        );
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

/**
 * How far an exposure change may move the shipped model's validation MAE and mean error: the
 * goal of the invariance (measured, README "Shipped weights": at most 0.28 and 0.43).
 */
const MAX_SHIFT = { mae: 0.5, bias: 1 };

/** A monotone exposure change of 8-bit pixels: gamma, or contrast about mid-gray. */
function exposed(images: Uint8Array, change: { gamma?: number; contrast?: number }): Uint8Array {
  const table = Uint8Array.from({ length: 256 }, (_, v) => {
    let x = v / 255;
    if (change.gamma) x = x ** change.gamma;
    if (change.contrast) x = 0.5 + change.contrast * (x - 0.5);
    return Math.round(255 * Math.min(1, Math.max(0, x)));
  });
  return images.map((v) => table[v]);
}

Deno.test({
  name:
    "weights: exposure changes within real ranges move the validation estimates by a bounded amount",
  ignore: !present,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const e = await testEngine();
    const { model, meta } = await loadCheckpoint(e, SHIPPED, "best");
    const data = String(meta.settings.data);
    const loaded = await loadImageSet(join(PROJECT_ROOT, data), {
      size: meta.config.inputHeight,
      fit: meta.recipe.fit,
      cacheDir: false,
      quiet: true,
    });
    const split = await readSplit(SHIPPED, loaded.set.ids);
    const val = subsetImageSet(loaded.set, split.val);
    const recipe = await loadRecipe(e, meta.recipe, SHIPPED);
    const score = async (images: Uint8Array) => {
      const prep = await prepareImageSet({ ...val, images }, recipe);
      const refused = new Set(prep.refused.map((r) => r.row));
      const rows = val.ids.map((_, i) => i).filter((i) => !refused.has(i));
      const months = await predictMonths(model, prep.set, rows, meta.normalization);
      let abs = 0, bias = 0;
      rows.forEach((r, k) => {
        abs += Math.abs(months[k] - val.boneage[r]) / rows.length;
        bias += (months[k] - val.boneage[r]) / rows.length;
      });
      const right = prep.hands!.filter((h) => h.registration && h.mirrored).length;
      return { mae: abs, bias, refused: refused.size, right };
    };
    const base = await score(val.images);
    console.log(`  as stored: MAE ${base.mae.toFixed(2)}, mean error ${base.bias.toFixed(2)}`);
    assert.ok(
      base.refused <= 0.01 * val.ids.length,
      `${base.refused} of ${val.ids.length} validation hands refused`,
    );
    // Right hands: the validation radiographs mirrored. Each gets the opposite answer of the
    // handedness model, so every hand reaches the bone-age model as the same left hand: the
    // same rows are refused and the estimates are those of the images as stored.
    const right = await score(mirroredImageSet(val).images);
    console.log(
      `  mirrored: MAE ${right.mae.toFixed(2)}, mean error ${right.bias.toFixed(2)}, ` +
        `${right.right} of ${val.ids.length - right.refused} taken for right hands ` +
        `(as stored: ${base.right})`,
    );
    assert.equal(right.refused, base.refused);
    assert.equal(right.right, val.ids.length - base.refused - base.right);
    assert.ok(Math.abs(right.mae - base.mae) <= 0.05, `mirrored: MAE ${right.mae}`);
    assert.ok(Math.abs(right.bias - base.bias) <= 0.05, `mirrored: bias ${right.bias}`);
    const shifts = [];
    for (const change of [{ gamma: 0.7 }, { gamma: 1.4 }, { contrast: 0.8 }, { contrast: 1.25 }]) {
      const got = await score(exposed(val.images, change));
      const what = JSON.stringify(change);
      console.log(`  ${what}: MAE ${got.mae.toFixed(2)}, mean error ${got.bias.toFixed(2)}`);
      shifts.push({
        what,
        mae: Math.abs(got.mae - base.mae),
        bias: Math.abs(got.bias - base.bias),
      });
    }
    for (const { what, mae, bias } of shifts) {
      assert.ok(mae <= MAX_SHIFT.mae, `${what}: the MAE moved by ${mae}`);
      assert.ok(bias <= MAX_SHIFT.bias, `${what}: the mean error moved by ${bias}`);
    }
  },
});
