import assert from "node:assert/strict";
import type { ImageSet } from "../src/data/dataset.ts";
import { type Batch, Loader, type LoaderOptions } from "../src/data/loader.ts";
import { mulberry32 } from "../src/util.ts";
import { augmentReference } from "../src/ref/augment.ts";
import { sumMiddle } from "../src/ops/reduce.ts";
import { relu } from "../src/ops/relu.ts";
import { assertClose, gpuTest } from "./helpers.ts";

/** A fake image set: random bytes, alternating sex, distinct ages. */
function fakeSet(n: number, size: number, seed: number): ImageSet {
  const images = new Uint8Array(n * size * size);
  for (let i = 0; i < images.length; i += 65536) {
    crypto.getRandomValues(images.subarray(i, Math.min(images.length, i + 65536)));
  }
  const r = mulberry32(seed);
  return {
    size,
    ids: Array.from({ length: n }, (_, i) => `img${1000 + i}`),
    images,
    male: Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)),
    boneage: Float32Array.from({ length: n }, () => 1 + Math.floor(r() * 228)),
  };
}

const OPTIONS: LoaderOptions = {
  batchSize: 4,
  seed: 11,
  shuffle: true,
  augment: true,
  pixelMean: 0.4,
  pixelStd: 0.25,
  ageMean: 127,
  ageSD: 41,
};

/** Collects the rows and params of one epoch without running any step. */
function epochRows(loader: Loader, epoch: number): { rows: number[]; params: Float32Array[] } {
  const rows: number[] = [];
  const params: Float32Array[] = [];
  for (const b of loader.epoch(epoch)) {
    rows.push(...b.rows);
    params.push(b.params);
  }
  return { rows, params };
}

gpuTest(
  "every index of the split appears once per epoch; the last partial batch is included",
  (e) => {
    const set = fakeSet(40, 7, 1);
    const split = Array.from({ length: 23 }, (_, i) => 39 - i * 1); // rows 39..17
    const loader = new Loader(e, set, split, OPTIONS);
    assert.equal(loader.batchesPerEpoch, 6);
    const counts: number[] = [];
    for (const b of loader.epoch(0)) counts.push(b.count);
    assert.deepEqual(counts, [4, 4, 4, 4, 4, 3]);
    for (const epoch of [0, 1, 2]) {
      const { rows } = epochRows(loader, epoch);
      assert.deepEqual([...rows].sort((a, b) => a - b), [...split].sort((a, b) => a - b));
    }
  },
);

gpuTest("order and augmentations are seeded by (seed, epoch)", (e) => {
  const set = fakeSet(30, 7, 2);
  const split = Array.from({ length: 30 }, (_, i) => i);
  const a = epochRows(new Loader(e, set, split, OPTIONS), 3);
  const again = epochRows(new Loader(e, set, split, OPTIONS), 3);
  assert.deepEqual(again, a);
  const otherEpoch = epochRows(new Loader(e, set, split, OPTIONS), 4);
  const otherSeed = epochRows(new Loader(e, set, split, { ...OPTIONS, seed: 12 }), 3);
  assert.notDeepEqual(otherEpoch.rows, a.rows);
  assert.notDeepEqual(otherEpoch.params, a.params);
  assert.notDeepEqual(otherSeed.rows, a.rows);
  assert.notDeepEqual(otherSeed.params, a.params);
  // Without shuffling the split's own order is kept.
  const plain = epochRows(new Loader(e, set, split, { ...OPTIONS, shuffle: false }), 3);
  assert.deepEqual(plain.rows, split);
});

gpuTest("batch contents match the image set rows; images match the reference", async (e) => {
  const size = 13;
  const set = fakeSet(20, size, 3);
  const split = [3, 5, 7, 11, 13, 17, 19, 2, 4];
  for (const augment of [true, false]) {
    const loader = new Loader(e, set, split, { ...OPTIONS, augment });
    const seen: number[] = [];
    for (const b of loader.epoch(1)) {
      seen.push(...b.rows);
      assert.deepEqual(b.ids, b.rows.map((r) => set.ids[r]));
      assert.deepEqual(Array.from(await b.male.read()), b.rows.map((r) => set.male[r]));
      assertClose(
        await b.target.read(),
        b.rows.map((r) => (set.boneage[r] - OPTIONS.ageMean) / OPTIONS.ageSD),
        "target",
        1e-6,
      );
      const bytes = new Uint8Array(b.count * size * size);
      b.rows.forEach((r, j) => bytes.set(set.images.subarray(r * 169, (r + 1) * 169), j * 169));
      assertClose(await b.images.read(), augmentReference(bytes, b.params, size), "images");
    }
    assert.equal(seen.length, split.length);
  }
});

gpuTest("the side option resamples each batch to the side asked for at that batch", async (e) => {
  const size = 13;
  const set = fakeSet(12, size, 5);
  const split = Array.from({ length: 12 }, (_, i) => i);
  // Batches 0 and 1 at side 9, batch 2 at the full side, as a training loop would switch.
  let batchIndex = 0;
  const sides = [9, 9, 13];
  const loader = new Loader(e, set, split, { ...OPTIONS, side: () => sides[batchIndex] });
  for (const b of loader.epoch(0)) {
    const side = sides[batchIndex];
    assert.deepEqual(b.images.shape, [b.count, side, side, 1]);
    const bytes = new Uint8Array(b.count * size * size);
    b.rows.forEach((r, j) => bytes.set(set.images.subarray(r * 169, (r + 1) * 169), j * 169));
    assertClose(await b.images.read(), augmentReference(bytes, b.params, size, side), "images");
    batchIndex++;
  }
  assert.equal(batchIndex, 3);
});

gpuTest("same seed and epoch give bit-identical GPU images", async (e) => {
  const set = fakeSet(12, 16, 4);
  const split = Array.from({ length: 12 }, (_, i) => i);
  const run = async () => {
    const out: Float32Array[] = [];
    for (const b of new Loader(e, set, split, OPTIONS).epoch(2)) out.push(await b.images.read());
    return out;
  };
  assert.deepEqual(await run(), await run());
});

gpuTest("leaving an epoch early releases the loader's tensors", (e) => {
  const set = fakeSet(12, 16, 5);
  const loader = new Loader(e, set, Array.from({ length: 12 }, (_, i) => i), OPTIONS);
  let first: Batch | null = null;
  for (const b of loader.epoch(0)) {
    first = b;
    break;
  }
  assert.ok(first?.images.disposed && first.male.disposed && first.target.disposed);
});

/**
 * A stand-in training step: a few kernels over the batch, one submit. Like a training loop,
 * it reads the loss only every `readEvery` steps, so the CPU may run ahead of the GPU.
 */
async function dummyStep(b: Batch, readEvery: number): Promise<void> {
  const e = b.images.engine;
  const loss = e.tidy(() => {
    const x = relu(b.images);
    const y = e.add(x, b.images);
    return e.add(sumMiddle(y, 1, y.size, 1, 1 / y.size), sumMiddle(b.target, 1, b.count, 1));
  });
  if (b.index % readEvery === readEvery - 1) await loss.item(); // flushes: the step's submit
  else e.flush();
  loss.dispose();
}

gpuTest(
  "one fake epoch (11,611 images 96x96, batch 32): one submit a step, buffers steady",
  async (e) => {
    e.fillOutputsWithNaN = false; // a training engine does not pre-fill outputs
    try {
      const set = fakeSet(11611, 96, 6);
      const split = Array.from({ length: set.ids.length }, (_, i) => i);
      const loader = new Loader(e, set, split, { ...OPTIONS, batchSize: 32 });
      const allocations: number[] = [];
      let steps = 0;
      const start = performance.now();
      for (const b of loader.epoch(0)) {
        const submits = e.stats.submits;
        await dummyStep(b, 4);
        // One submit per step: the uploads never forced a flush.
        assert.equal(e.stats.submits - submits, 1, `step ${b.index}`);
        allocations.push(e.pool.allocations);
        steps++;
      }
      await e.sync();
      const totalMs = performance.now() - start;
      assert.equal(steps, 363);
      // Steady state from the third step; only the last, partial batch (11,611 = 362 * 32 + 27)
      // brings buffers of new sizes (and it is staged during step 361).
      assert.equal(allocations[360], allocations[2]);
      const { waitMs, uploadMs } = loader.stats;
      console.log(
        `epoch ${totalMs.toFixed(0)} ms, ${(totalMs / steps).toFixed(2)} ms/step; waiting for ` +
          `data ${waitMs.toFixed(0)} ms = ${(100 * waitMs / totalMs).toFixed(2)}% ` +
          `(packing + upload ${uploadMs.toFixed(0)} ms = ${
            (100 * uploadMs / totalMs).toFixed(2)
          }%)`,
      );
      // The share of time spent waiting is printed, not asserted: it depends on the machine.
    } finally {
      e.fillOutputsWithNaN = true;
    }
  },
);
