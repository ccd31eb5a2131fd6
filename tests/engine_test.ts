import assert from "node:assert/strict";
import { Engine, grid } from "../src/engine.ts";
import { NO_ADAPTER_HELP } from "../src/device.ts";
import { gpuTest, testEngine } from "./helpers.ts";

gpuTest("the device reports the adapter and the limits it granted", (e) => {
  assert(e.info.description.length > 0);
  assert(e.info.limits.maxStorageBufferBindingSize >= 128 * 1024 * 1024);
  assert(e.info.limits.maxComputeInvocationsPerWorkgroup >= 256);
  assert.deepEqual(typeof e.info.isFallback, "boolean");
});

Deno.test("the no-adapter message names the fix", () => {
  assert(NO_ADAPTER_HELP.includes("mesa-vulkan-drivers"));
  assert(NO_ADAPTER_HELP.includes("GPU driver"));
});

gpuTest("tensors check their shape and data length", (e) => {
  assert.throws(() => e.empty([2, 0, 3]), /invalid shape \[2, 0, 3\]/);
  assert.throws(() => e.empty([2.5]), /invalid shape/);
  assert.throws(
    () => e.tensor([1, 2, 3], [2, 2], "x"),
    /tensor x: 3 values do not fill shape \[2, 2\]/,
  );
});

gpuTest("a disposed tensor cannot be used", async (e) => {
  const t = e.tensor([1, 2, 3], [3], "w");
  t.dispose();
  assert(t.disposed);
  assert.throws(() => t.buffer, /tensor w\[3\] used after dispose/);
  await assert.rejects(() => t.read(), /used after dispose/);
  assert.throws(() => e.add(t, t), /used after dispose/);
});

gpuTest("tidy disposes what it does not return and keeps what it returns", async (e) => {
  let inner: ReturnType<Engine["empty"]> | undefined;
  const kept = e.tidy(() => {
    inner = e.full([4], 2);
    const other = e.full([4], 3);
    return { sum: e.add(inner, other) };
  });
  assert(inner!.disposed);
  assert(!kept.sum.disposed);
  assert.deepEqual([...await kept.sum.read()], [5, 5, 5, 5]);
  kept.sum.dispose();
});

gpuTest("the pool reuses released buffers of the same size", (e) => {
  const before = e.pool.allocations;
  for (let i = 0; i < 10; i++) {
    e.tidy(() => e.add(e.full([1000], 1), e.full([1000], 2)) && undefined);
  }
  // Three live tensors at most per iteration: the pool needs three buffers, not thirty.
  assert(e.pool.allocations - before <= 3, `allocated ${e.pool.allocations - before}`);
});

gpuTest("recording is lazy: kernels run at flush, and one flush is one submit", async (e) => {
  await e.sync();
  const submits = e.stats.submits;
  const a = e.full([5], 1);
  let b = a;
  for (let i = 0; i < 20; i++) b = e.add(b, a);
  assert.deepEqual(e.stats.submits, submits, "no submit while recording");
  e.flush();
  assert.deepEqual(e.stats.submits, submits + 1);
  assert.deepEqual([...await b.read()], [21, 21, 21, 21, 21]);
});

gpuTest("writing a buffer that pending commands read keeps their view of it", async (e) => {
  const x = e.tensor([1, 2], [2]);
  const y = e.add(x, x); // recorded, not yet submitted
  e.write(x, [10, 20]); // must not overtake the add above
  assert.deepEqual([...await y.read()], [2, 4]);
  assert.deepEqual([...await x.read()], [10, 20]);
});

Deno.test("grid folds large dispatches into two dimensions", () => {
  assert.deepEqual(grid(100), [2, 1, 1]);
  const [x, y] = grid(64 * 70000);
  assert(x <= 65535 && x * y >= 70000);
});

Deno.test({
  name: "a lost device raises an error instead of hanging",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const e = await Engine.create();
    const t = e.full([8], 1);
    await t.read();
    e.device.destroy();
    await assert.rejects(async () => {
      await e.add(t, t).read();
    }, /GPU device lost/);
  },
});

Deno.test({
  name: "the kernel policy: auto picks rows on a CPU adapter and generic on a GPU",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const auto = await testEngine("auto");
    assert.equal(auto.kernels, auto.info.isFallback ? "rows" : "generic");
    assert.equal((await testEngine("rows")).kernels, "rows");
    assert.equal((await testEngine("generic")).kernels, "generic");
    await assert.rejects(
      () =>
        Engine.create({ gpu: { device: auto.device, info: auto.info }, kernels: "fast" as never }),
      /unknown kernel policy "fast": choose one of auto, rows, generic/,
    );
  },
});
