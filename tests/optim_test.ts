import { Adam, type AdamOptions } from "../src/model/optim.ts";
import { AdamRef } from "../src/ref/optim.ts";
import type { Engine } from "../src/engine/engine.ts";
import type { Tensor } from "../src/engine/tensor.ts";
import { assertClose, gpuTest, randomTensor, throwsWith } from "./helpers.ts";

const SHAPES = [[3, 5], [7], [1], [2, 3, 3, 5]];

function setup(e: Engine) {
  const params = SHAPES.map((s, i) => randomTensor(e, s, 100 + i));
  for (const p of params) e.keep(p.t);
  return params;
}

/** Gradients of step `k`: fresh random tensors (with their float64 twins). */
function gradsFor(e: Engine, params: Tensor[], k: number) {
  const g = params.map((p, i) => randomTensor(e, p.shape, 1000 * k + i, -2, 2));
  return { map: new Map(params.map((p, i) => [p, g[i].t])), ref: g.map((x) => x.ref) };
}

async function compare(
  adam: Adam,
  ref: AdamRef,
  params: Tensor[],
  p0: Float64Array[],
  what: string,
): Promise<void> {
  const state = await adam.state();
  if (state.step !== ref.t) throw new Error(`${what}: step ${state.step}, want ${ref.t}`);
  for (let i = 0; i < params.length; i++) {
    const got = await params[i].read();
    // Compare the change, not the parameter: it is small next to the parameter itself.
    assertClose(
      got.map((v, j) => v - p0[i][j]),
      ref.params[i].map((v, j) => v - p0[i][j]),
      `${what} delta p${i}`,
    );
    assertClose(state.m[i], ref.m[i], `${what} m${i}`);
    assertClose(state.v[i], ref.v[i], `${what} v${i}`);
  }
}

for (
  const options of [{ lr: 0.01 }, {
    lr: 0.02,
    weightDecay: 0.1,
    beta1: 0.8,
    beta2: 0.99,
    eps: 1e-6,
  }] as AdamOptions[]
) {
  gpuTest(`Adam ${JSON.stringify(options)} matches the reference over 5 steps`, async (e) => {
    const ps = setup(e);
    const params = ps.map((p) => p.t);
    const p0 = ps.map((p) => p.ref);
    const adam = new Adam(e, params, options);
    const ref = new AdamRef(p0, options);
    for (let k = 0; k < 5; k++) {
      const lr = k === 3 ? options.lr / 2 : undefined;
      e.tidy(() => {
        const g = gradsFor(e, params, k);
        adam.step(g.map, lr);
        ref.step(g.ref, lr);
      });
      await compare(adam, ref, params, p0, `step ${k + 1}`);
    }
    adam.dispose();
  });
}

gpuTest(
  "Adam state round-trips through loadState; steady-state steps allocate nothing",
  async (e) => {
    const options = { lr: 0.01, weightDecay: 0.05 };
    const ps = setup(e);
    const params = ps.map((p) => p.t);
    const p0 = ps.map((p) => p.ref);
    const ref = new AdamRef(p0, options);
    const adam = new Adam(e, params, options);
    for (let k = 0; k < 2; k++) {
      e.tidy(() => {
        const g = gradsFor(e, params, k);
        adam.step(g.map);
        ref.step(g.ref);
      });
    }
    // A fresh optimizer restored from the snapshot continues exactly where the first left off.
    const restored = new Adam(e, params, options);
    restored.loadState(await adam.state());
    adam.dispose();
    const compiled = e.stats.pipelines;
    for (let k = 2; k < 5; k++) {
      const g = gradsFor(e, params, k);
      const before = e.pool.allocations;
      restored.step(g.map);
      ref.step(g.ref);
      if (e.pool.allocations !== before) throw new Error("step allocated GPU buffers");
      g.map.forEach((t) => t.dispose());
    }
    const pipelines = e.stats.pipelines - compiled;
    if (pipelines !== 0) throw new Error(`steps compiled ${pipelines} pipelines`);
    await compare(restored, ref, params, p0, "restored");
    restored.dispose();
  },
);

gpuTest("Adam rejects missing or mismatched gradients and bad state", (e) => {
  const p = e.keep(e.full([2, 3], 1, "w"));
  const adam = new Adam(e, [p], { lr: 0.1 });
  throwsWith(() => adam.step(new Map()), "Adam.step", "w", "[2, 3]");
  throwsWith(() => adam.step(new Map([[p, e.full([3, 2], 0)]])), "Adam.step", "[2, 3]", "[3, 2]");
  throwsWith(
    () => adam.loadState({ step: 1, m: [new Float32Array(5)], v: [new Float32Array(6)] }),
    "Adam.loadState",
    "[2, 3]",
  );
  throwsWith(() => new Adam(e, [p, p], { lr: 0.1 }), "Adam", "twice");
  throwsWith(() => new Adam(e, [p], { lr: 0.1, beta1: 1 }), "Adam", "beta1");
  adam.dispose();
});
