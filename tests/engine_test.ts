import assert from "node:assert/strict";
import { Engine, grid, readKernelFile } from "../src/engine/engine.ts";
import { NO_ADAPTER_HELP } from "../src/engine/device.ts";
import {
  expandIncludes,
  orderBindings,
  parseKernelInterface,
  resolveWorkgroupSize,
} from "../src/engine/kernel_source.ts";
import { assertClose, gpuTest, randomArray, testEngine, throwsWith } from "./helpers.ts";

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

Deno.test("every kernel declares its bindings 0, 1, 2, ... and a workgroup size per entry", () => {
  const kernels = ["", "generated/"].flatMap((folder) =>
    [...Deno.readDirSync(new URL(`../kernels/${folder}`, import.meta.url))]
      .filter((f) => f.name.endsWith(".wgsl")).map((f) => folder + f.name)
  );
  assert.ok(kernels.length >= 40, `${kernels.length} kernels`);
  for (const name of kernels) {
    const source = expandIncludes(name, readKernelFile(name), readKernelFile);
    assert.doesNotMatch(source, /\bNAME\b|NAMEAt/, `${name}: a template name is left`);
    const face = parseKernelInterface(name, source);
    assert.ok(face.bindings.length >= 1, `${name} binds nothing`);
    assert.ok(face.bindings.some((b) => b.access === "read_write"), `${name} writes nothing`);
    assert.ok(Object.keys(face.workgroupSize).length >= 1, `${name} has no entry point`);
  }
});

Deno.test("the kernel interface: names and access in binding order, commented code ignored", () => {
  const source = `
    // @group(0) @binding(0) var<storage, read> notMe: array<f32>;
    override WX: u32 = 8;
    @group(0) @binding(1) var<storage, read_write> y: array<f32>;
    @group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
    @compute @workgroup_size(WX, 2) fn main() {}
    @compute @workgroup_size(16) fn other() {}`;
  const face = parseKernelInterface("t.wgsl", source);
  assert.deepEqual(face.bindings, [{ name: "x", access: "read" }, {
    name: "y",
    access: "read_write",
  }]);
  assert.equal(face.overridesWG, false);
  assert.deepEqual(resolveWorkgroupSize(face, "main", {}), [8, 2, 1]);
  assert.deepEqual(resolveWorkgroupSize(face, "main", { WX: 4 }), [4, 2, 1]);
  assert.deepEqual(resolveWorkgroupSize(face, "other", {}), [16, 1, 1]);
  throwsWith(() => resolveWorkgroupSize(face, "nope", {}), "t.wgsl", '"nope"');
  assert.deepEqual(orderBindings(face, { y: "Y", x: "X" }), ["X", "Y"]);
  throwsWith(
    () => orderBindings(face, { x: "X" }),
    't.wgsl: binding "y" (@binding(1)) is not given',
  );
  throwsWith(() => orderBindings(face, { x: "X", y: "Y", z: "Z" }), 'no binding named "z"', "x, y");
  throwsWith(
    () => parseKernelInterface("gap.wgsl", "@group(0) @binding(1) var<storage, read> a: f32;"),
    "gap.wgsl: @binding(0) is missing",
  );
});

Deno.test("#include pulls a snippet from include/, once per name with for", () => {
  const snippets: Record<string, string> = {
    "include/one.wgsl": "fn one() -> f32 { return 1.0; }",
    "include/at.wgsl": "fn NAMEAt(i: u32) -> f32 { return NAME[i]; }",
    "include/nested.wgsl": '#include "one.wgsl"',
  };
  const load = (file: string) => {
    if (!(file in snippets)) throw new Error(`${file}: not found`);
    return snippets[file];
  };
  assert.equal(
    expandIncludes("k.wgsl", 'a\n#include "one.wgsl"\nb', load),
    "a\nfn one() -> f32 { return 1.0; }\nb",
  );
  assert.equal(
    expandIncludes("k.wgsl", '#include "at.wgsl" for mean, gamma', load),
    "fn meanAt(i: u32) -> f32 { return mean[i]; }\nfn gammaAt(i: u32) -> f32 { return gamma[i]; }",
  );
  throwsWith(
    () => expandIncludes("k.wgsl", "#include at.wgsl", load),
    "k.wgsl",
    "#include at.wgsl",
  );
  throwsWith(() => expandIncludes("k.wgsl", '#include "gone.wgsl"', load), "include/gone.wgsl");
  throwsWith(
    () => expandIncludes("k.wgsl", '#include "nested.wgsl"', load),
    "include/nested.wgsl (included by k.wgsl) includes another file",
  );
  throwsWith(() => expandIncludes("k.wgsl", '#include "one.wgsl" for x', load), "has no NAME");
});

gpuTest("a program binds by the kernel's names and its workgroup size is checked", async (e) => {
  const n = 37;
  const data = randomArray(n, 5);
  const x = e.tensor(data, [n]);
  const y = e.empty([n]);
  const n4 = Math.ceil(n / 4);
  const relu = { kernel: "relu_forward.wgsl", constants: { N4: n4 } };
  throwsWith(() => e.run({ ...relu, dispatch: grid(n4) }, { x, out: y }), 'no binding named "out"');
  throwsWith(() => e.run({ ...relu, dispatch: grid(n4) }, { x }), 'binding "y" (@binding(1))');
  throwsWith(
    () => e.run({ ...relu, constants: { N4: n4, WG: 32 }, dispatch: grid(n4, 32) }, { x, y }),
    "relu_forward.wgsl: WG is set by the engine",
  );
  throwsWith(
    () => e.run({ kernel: "generated/conv2d_rows_vec4.wgsl", dispatch: [1] }, { x, y }),
    "generated/conv2d_rows_vec4.wgsl: @workgroup_size is (16,1,1) but the program dispatches for (64,1,1)",
  );
  // Another workgroup size reaches the kernel's WG: every element is still written once.
  const seen: string[] = [];
  e.onDispatch = (p) => seen.push(p.kernel);
  const program = { ...relu, workgroupSize: [8], dispatch: grid(n4, 8) };
  assert.deepEqual(e.workgroupSize(program), [8, 1, 1]);
  e.run(program, { x, y });
  e.onDispatch = null;
  assert.deepEqual(seen, ["relu_forward.wgsl"]);
  assertClose(await y.read(), data.map((v) => Math.max(0, v)), "relu in workgroups of 8", 1e-6);
  x.dispose();
  y.dispose();
});
