/**
 * Seeded stratified split, its JSON round trip in a run folder, and pixel statistics.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import type { ImageSet } from "../src/data/dataset.ts";
import { readSplit, splitDataset, stratumOf, writeSplit } from "../src/data/split.ts";
import { pixelStats } from "../src/data/stats.ts";
import { mulberry32 } from "../src/util.ts";

/** A label-only set of n people with uneven sex/age mix. */
function population(n: number, seed: number): Pick<ImageSet, "ids" | "male" | "boneage"> {
  const r = mulberry32(seed);
  const ids = Array.from({ length: n }, (_, i) => String(1000 + i));
  const male = Uint8Array.from({ length: n }, () => (r() < 0.54 ? 1 : 0));
  const boneage = Float32Array.from({ length: n }, () => Math.round(1 + 227 * r() ** 0.7));
  return { ids, male, boneage };
}

Deno.test("split is deterministic, seed-dependent, and independent of row order", () => {
  const pop = population(1000, 1);
  const a = splitDataset(pop, { seed: 7 });
  const b = splitDataset(pop, { seed: 7 });
  assert.deepEqual(a, b);
  assert.equal(a.valFraction, 0.15);
  assert.equal(a.val.length, 150);
  assert.equal(a.train.length + a.val.length, 1000);
  assert.equal(new Set([...a.train, ...a.val]).size, 1000, "disjoint and complete");
  assert.deepEqual(a.valIds, a.val.map((i) => pop.ids[i]));

  const c = splitDataset(pop, { seed: 8 });
  assert.notDeepEqual(c.valIds, a.valIds);

  // Reverse the rows: the same people go to validation.
  const rev = {
    ids: [...pop.ids].reverse(),
    male: Uint8Array.from(pop.male).reverse(),
    boneage: Float32Array.from(pop.boneage).reverse(),
  };
  const d = splitDataset(rev, { seed: 7 });
  assert.deepEqual([...d.valIds].sort(), [...a.valIds].sort());
});

Deno.test("split is stratified by sex and age band", () => {
  const pop = population(2000, 2);
  const s = splitDataset(pop, { seed: 3, valFraction: 0.2 });
  assert.equal(s.val.length, 400);
  const keys = Object.keys(s.strata);
  assert(keys.includes("M:0-2y") && keys.includes("F:14-19y"), keys.join(","));
  assert.equal(keys.length, 10);
  const valCount = new Map<string, number>();
  for (const i of s.val) {
    const k = stratumOf(pop.male[i], pop.boneage[i]);
    valCount.set(k, (valCount.get(k) ?? 0) + 1);
  }
  for (const [k, { total, val }] of Object.entries(s.strata)) {
    assert.equal(valCount.get(k) ?? 0, val, k);
    assert(Math.abs(val - total * 0.2) <= 1, `${k}: ${val} of ${total}`);
  }
  assert.equal(stratumOf(1, 23.9), "M:0-2y");
  assert.equal(stratumOf(0, 24), "F:2-6y");
  assert.equal(stratumOf(0, 228), "F:14-19y");
  assert.equal(stratumOf(1, NaN), "M:unlabelled");
});

Deno.test("split round-trips through a run folder and re-resolves against other ids", async () => {
  const pop = population(200, 4);
  const s = splitDataset(pop, { seed: 1 });
  const run = join(await Deno.makeTempDir({ prefix: "data_split_" }), "run-1");
  const path = await writeSplit(run, s);
  assert.equal(path, join(run, "split.json"));
  const back = await readSplit(run);
  assert.deepEqual(back, s);

  // The set loaded later has a different order and lost one validation image.
  const lost = s.valIds[0];
  const later = [...pop.ids].reverse().filter((id) => id !== lost);
  const r = await readSplit(run, later);
  assert.deepEqual(r.missing, [lost]);
  assert.deepEqual(new Set(r.valIds), new Set(s.valIds.slice(1)));
  assert.deepEqual(r.val.map((i) => later[i]), r.valIds);
  assert.equal(r.train.length, s.train.length);
  await Deno.writeTextFile(join(run, "split.json"), "{}");
  await assert.rejects(() => readSplit(run), /not a split file/);
});

Deno.test("pixelStats: exact mean and std of x/255, over all or some images", () => {
  const set: ImageSet = {
    size: 2,
    ids: ["a", "b"],
    images: Uint8Array.from([0, 0, 255, 255, 51, 51, 51, 51]),
    male: Uint8Array.from([1, 0]),
    boneage: Float32Array.from([1, 2]),
  };
  const all = pixelStats(set);
  const mean = (0.5 + 0.2) / 2; // image a: mean 0.5, image b: 0.2
  assert(Math.abs(all.mean - mean) < 1e-12);
  const v = [0, 0, 1, 1, 0.2, 0.2, 0.2, 0.2].reduce((s, x) => s + (x - mean) ** 2, 0) / 8;
  assert(Math.abs(all.std - Math.sqrt(v)) < 1e-12);
  const b = pixelStats(set, [1]);
  assert(Math.abs(b.mean - 0.2) < 1e-12);
  assert.equal(b.std, 1e-6, "a flat image gets the floor, not 0");
  assert.throws(() => pixelStats(set, [2]), RangeError);
});
