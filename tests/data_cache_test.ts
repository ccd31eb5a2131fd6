/**
 * The preprocessing cache: miss, hit, partial rebuild, parameter change, cached failures,
 * limit runs, read-only fallback, and a subset of the real 100px data.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadImageSet } from "../src/data/load.ts";
import { encodeGrayPng } from "../src/data/png.ts";

const SHARED = new URL("../../shared/data/", import.meta.url).pathname;
const SMALL = join(SHARED, "rsna-100px");
const hasSmall = (() => {
  try {
    return Deno.statSync(SMALL).isDirectory;
  } catch {
    return false;
  }
})();

/** Non-square gray PNG whose content depends on `seed`. */
function png(seed: number): Uint8Array {
  const w = 30, h = 40;
  return encodeGrayPng(Array.from({ length: w * h }, (_, i) => (i * 13 + seed * 97) & 255), w, h);
}

/** Kaggle folder with `n` images (ids 1..n), ages 10, 20, ... 300 months, repeating. */
async function kaggle(n: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "data_cache_" });
  await Deno.mkdir(join(dir, "boneage-training-dataset"));
  const lines = ["id,boneage,male"];
  for (let i = 1; i <= n; i++) {
    await Deno.writeFile(join(dir, "boneage-training-dataset", `${i}.png`), png(i));
    lines.push(`${i},${10 * ((i - 1) % 30 + 1)},${i % 2 ? "True" : "False"}`);
  }
  await Deno.writeTextFile(join(dir, "boneage-training-dataset.csv"), lines.join("\n"));
  return dir;
}

const quiet = { quiet: true, progress: false };

Deno.test("cache: cold miss, warm hit, one changed file rebuilt alone, size change", async () => {
  const dir = await kaggle(60);
  const cacheDir = join(dir, "cache-here");
  // 60 images use the worker pool (two workers), the path big data sets take.
  const cold = await loadImageSet(dir, { size: 24, cacheDir, workers: 2, ...quiet });
  assert.deepEqual(cold.cache, { dir: cacheDir, hits: 0, decoded: 60 });
  assert.equal(cold.set.ids.length, 60);
  assert.equal(cold.set.boneage[4], 50);

  const warm = await loadImageSet(dir, { size: 24, cacheDir, ...quiet });
  assert.deepEqual(warm.cache, { dir: cacheDir, hits: 60, decoded: 0 });
  assert.deepEqual(warm.set.images, cold.set.images);
  assert.deepEqual(warm.set.ids, cold.set.ids);

  // Same size, new content (and mtime): only that image is decoded again.
  await new Promise((r) => setTimeout(r, 20));
  await Deno.writeFile(join(dir, "boneage-training-dataset", "7.png"), png(1000));
  const partial = await loadImageSet(dir, { size: 24, cacheDir, workers: 0, ...quiet });
  assert.deepEqual([partial.cache.hits, partial.cache.decoded], [59, 1]);
  const px = 24 * 24;
  const img = (r: typeof cold, i: number) => r.set.images.subarray(i * px, (i + 1) * px);
  assert.notDeepEqual(img(partial, 6), img(cold, 6), "the changed image is new");
  assert.deepEqual(img(partial, 5), img(cold, 5));

  // Another size is another cache file; the first one stays usable.
  const other = await loadImageSet(dir, { size: 32, cacheDir, workers: 0, ...quiet });
  assert.equal(other.cache.decoded, 60);
  assert.equal(other.set.images.length, 60 * 32 * 32);
  const again = await loadImageSet(dir, { size: 24, cacheDir, ...quiet });
  assert.equal(again.cache.hits, 60);
  assert.deepEqual(again.set.images, partial.set.images);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("cache: failures are cached, a quick limit run does not evict the rest", async () => {
  const dir = await kaggle(12);
  const cacheDir = join(dir, "c");
  await Deno.writeFile(join(dir, "boneage-training-dataset", "3.png"), new Uint8Array([1, 2, 3]));
  const first = await loadImageSet(dir, { size: 16, cacheDir, ...quiet });
  assert.equal(first.report.skipped[0]?.reason, "corrupt PNG");
  const second = await loadImageSet(dir, { size: 16, cacheDir, ...quiet });
  assert.equal(second.cache.decoded, 0, "the corrupt file is not decoded again");
  assert.deepEqual(second.report.skipped.map((s) => [s.id, s.reason]), [["3", "corrupt PNG"]]);

  const dir2 = await kaggle(12);
  const c2 = join(dir2, "c");
  const some = await loadImageSet(dir2, { size: 16, cacheDir: c2, limit: 4, ...quiet });
  assert.deepEqual([some.set.ids.length, some.cache.decoded], [4, 4]);
  const all = await loadImageSet(dir2, { size: 16, cacheDir: c2, ...quiet });
  assert.deepEqual([all.cache.hits, all.cache.decoded], [4, 8]);
  await Deno.writeFile(join(dir2, "boneage-training-dataset", "2.png"), png(77));
  const some2 = await loadImageSet(dir2, { size: 16, cacheDir: c2, limit: 4, ...quiet });
  assert.deepEqual([some2.cache.hits, some2.cache.decoded], [3, 1]);
  const all2 = await loadImageSet(dir2, { size: 16, cacheDir: c2, ...quiet });
  assert.deepEqual([all2.cache.hits, all2.cache.decoded], [12, 0]);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(dir2, { recursive: true });
});

Deno.test("cache: default <dataDir>/.cache, project fallback for read-only data folders", async () => {
  const dir = await kaggle(3);
  const inData = await loadImageSet(dir, { size: 16, ...quiet });
  assert.equal(inData.cache.dir, join(dir, ".cache"));
  assert((await Deno.stat(join(dir, ".cache"))).isDirectory);

  // A file where the cache folder would go makes the data folder's cache unusable.
  const ro = await kaggle(3);
  await Deno.writeTextFile(join(ro, ".cache"), "in the way");
  const fallback = await loadImageSet(ro, { size: 16, ...quiet });
  const projectCache = fileURLToPath(new URL("../data/.cache/", import.meta.url));
  assert(fallback.cache.dir?.startsWith(projectCache), String(fallback.cache.dir));
  const warm = await loadImageSet(ro, { size: 16, ...quiet });
  assert.deepEqual([warm.cache.dir, warm.cache.hits], [fallback.cache.dir, 3]);
  await Deno.remove(fallback.cache.dir!, { recursive: true });

  // A folder marked read-only (like the shared data) is left alone, even by root.
  const locked = await kaggle(3);
  await Deno.chmod(locked, 0o555);
  try {
    const r = await loadImageSet(locked, { size: 16, ...quiet });
    assert(r.cache.dir?.startsWith(projectCache), String(r.cache.dir));
    assert.equal(r.cache.decoded, 3);
    await assert.rejects(() => Deno.stat(join(locked, ".cache")), Deno.errors.NotFound);
    await Deno.remove(r.cache.dir!, { recursive: true });
  } finally {
    await Deno.chmod(locked, 0o755);
  }
  for (const d of [dir, ro, locked]) await Deno.remove(d, { recursive: true });
});

Deno.test({
  name: "real 100px subset loads at 96 px and matches its CSV rows",
  ignore: !hasSmall,
  fn: async () => {
    const cacheDir = await Deno.makeTempDir({ prefix: "data_cache_real_" });
    const { set, rows, report } = await loadImageSet(SMALL, {
      size: 96,
      cacheDir,
      limit: 300,
      ...quiet,
    });
    assert.equal(set.ids.length, 300);
    assert.equal(report.skipped.length, 0);
    assert.equal(set.images.length, 300 * 96 * 96);
    const csv = (await Deno.readTextFile(join(SMALL, "boneage-training-dataset.csv"))).split("\n");
    for (const k of [0, 150, 299]) {
      const [id, age, male] = csv[k + 1].trim().split(",");
      assert.deepEqual([set.ids[k], set.boneage[k], set.male[k]], [
        id,
        +age,
        male === "True" ? 1 : 0,
      ]);
      assert.equal(rows[k].id, id);
    }
    // 100x100 into 96x96: a square fills the frame, and real radiographs are not blank.
    let mean = 0;
    for (const v of set.images) mean += v;
    mean /= set.images.length;
    assert(mean > 20 && mean < 200, `mean ${mean}`);
    const warm = await loadImageSet(SMALL, { size: 96, cacheDir, limit: 300, ...quiet });
    assert.deepEqual(warm.set.images, set.images);
    assert.equal(warm.cache.hits, 300);
    await Deno.remove(cacheDir, { recursive: true });
  },
});
