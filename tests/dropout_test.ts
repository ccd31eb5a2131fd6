import { Dropout, dropout } from "../src/ops/dropout.ts";
import { dropoutForward, dropoutMask } from "../src/ref/dropout.ts";
import { assertClose, backwardOf, gpuTest, randomTensor, throwsWith } from "./helpers.ts";

function sameZeros(got: Float32Array, mask: Float64Array, what: string): void {
  for (let i = 0; i < mask.length; i++) {
    if ((got[i] === 0) !== (mask[i] === 0)) {
      throw new Error(`${what}: element ${i} kept/dropped differs from the reference mask`);
    }
  }
}

for (
  const [shape, p, seed] of [[[3, 5, 7], 0.3, 1], [[2, 1], 0.5, 42], [
    [4, 33],
    0.9,
    0xfffffff0,
  ]] as const
) {
  gpuTest(
    `dropout ${JSON.stringify(shape)} p=${p} seed=${seed} matches the reference mask`,
    async (e) => {
      const x = randomTensor(e, shape, 5);
      const dy = randomTensor(e, shape, 6);
      x.t.requiresGrad = true;
      const y = dropout(x.t, p, seed, true);
      const [dx] = backwardOf(e, y, dy.t, [x.t]);
      const mask = dropoutMask(x.ref.length, p, seed);
      const got = await y.read();
      sameZeros(got, mask, "dropout forward");
      assertClose(got, dropoutForward(x.ref, p, seed), "dropout forward");
      assertClose(await dx!.read(), dropoutForward(dy.ref, p, seed), "dropout backward");
    },
  );
}

gpuTest(
  "dropout keeps about 1 - p, is reproducible per seed and differs across seeds",
  async (e) => {
    const n = 40000;
    const x = e.full([n], 1);
    const a = await dropout(x, 0.25, 7, true).read();
    const b = await dropout(x, 0.25, 7, true).read();
    const c = await dropout(x, 0.25, 8, true).read();
    let kept = 0;
    let same = 0;
    for (let i = 0; i < n; i++) {
      if (a[i] !== b[i]) throw new Error(`same seed, element ${i} differs`);
      if (a[i] !== 0) kept++;
      if ((a[i] === 0) === (c[i] === 0)) same++;
    }
    if (Math.abs(kept / n - 0.75) > 0.01) throw new Error(`kept ${kept / n}, want about 0.75`);
    // Independent masks agree on 0.75^2 + 0.25^2 = 62.5% of elements.
    if (Math.abs(same / n - 0.625) > 0.015) throw new Error(`seeds 7 and 8 agree on ${same / n}`);
  },
);

gpuTest("dropout is the identity when not training or p = 0", (e) => {
  const x = e.full([3, 3], 2);
  if (dropout(x, 0.5, 1, false) !== x || dropout(x, 0, 1, true) !== x) {
    throw new Error("expected x itself");
  }
  const d = new Dropout(e, 0.5);
  if (d.forward(x, 3, false) !== x) throw new Error("expected x itself from Dropout");
  d.dispose();
});

gpuTest(
  "Dropout re-seeds without new buffers or pipelines and guards a pending backward",
  async (e) => {
    const drop = new Dropout(e, 0.4);
    const x = randomTensor(e, [6, 11], 9);
    const dy = randomTensor(e, [6, 11], 10);
    x.t.requiresGrad = true;
    let allocations = 0, compiled = 0;
    for (let step = 0; step < 4; step++) {
      const seed = 1000 + step;
      const [y, dx] = e.tidy(() => {
        const y = drop.forward(x.t, seed, true);
        const [dx] = backwardOf(e, y, dy.t, [x.t]);
        return [y, dx!];
      });
      assertClose(await y.read(), dropoutForward(x.ref, 0.4, seed), `step ${step} forward`);
      assertClose(await dx.read(), dropoutForward(dy.ref, 0.4, seed), `step ${step} backward`);
      y.dispose();
      dx.dispose();
      if (step === 1) allocations = e.pool.allocations;
      if (step > 1 && e.pool.allocations !== allocations) throw new Error("pool grew");
      const pipelines = e.stats.pipelines - compiled;
      if (step > 0 && pipelines !== 0) throw new Error(`${pipelines} pipelines compiled`);
      compiled = e.stats.pipelines;
    }
    // The mask is shared by a forward and its backward: re-seeding between them would change
    // the gradient, so it is refused until the backward has run.
    const first = drop.forward(x.t, 1, true);
    throwsWith(() => drop.forward(x.t, 2, true), "Dropout", "re-seeded");
    backwardOf(e, first, dy.t, [x.t]);
    const second = drop.forward(x.t, 2, true);
    backwardOf(e, second, dy.t, [x.t]);
    drop.dispose();
  },
);

gpuTest("dropout rejects bad p and seeds", (e) => {
  const x = e.full([2], 1);
  throwsWith(() => dropout(x, 1, 1, true), "dropout", "p");
  throwsWith(() => dropout(x, 0.5, -1, true), "dropout", "seed");
  throwsWith(() => dropout(x, 0.5, 1.5, true), "dropout", "seed");
  throwsWith(() => dropout(x, 0.5, e.full([2], 0), true), "dropout", "seed tensor");
});
