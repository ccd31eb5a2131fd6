import assert from "node:assert/strict";
import {
  conv2d,
  conv2dBackwardBias,
  conv2dBackwardData,
  conv2dBackwardWeight,
  conv2dForward,
  conv2dPrograms,
} from "../src/ops/conv2d.ts";
import { CONV_KERNEL_VARIANTS, kernelSource } from "../src/ops/conv2d_kernels.ts";
import * as ref from "../src/ref/conv2d.ts";
import { outputSize } from "../src/ops/geometry.ts";
import type { Engine } from "../src/engine/engine.ts";
import {
  assertClose,
  backwardOf,
  gpuTest,
  randomTensor,
  testEngine,
  throwsWith,
} from "./helpers.ts";

interface Case {
  N: number;
  H: number;
  W: number;
  Cin: number;
  Cout: number;
  K: number;
  stride: number;
  padding: number;
  bias: boolean;
}

const c = (
  N: number,
  H: number,
  W: number,
  Cin: number,
  Cout: number,
  K: number,
  stride: number,
  padding: number,
  bias: boolean,
): Case => ({ N, H, W, Cin, Cout, K, stride, padding, bias });

// The first six take the generated 3x3 stride-1 kernels (vec4 and one-channel-at-a-time
// inputs, partial output-channel blocks, odd vec4 counts, padding 0 and 1); the rest take the
// generic kernels (odd output channels, kernel 1 and 5, stride 2).
const CASES: Case[] = [
  c(1, 7, 13, 4, 8, 3, 1, 1, true),
  c(3, 7, 13, 16, 12, 3, 1, 1, false),
  c(2, 6, 5, 20, 4, 3, 1, 0, true),
  c(2, 9, 7, 1, 16, 3, 1, 1, true),
  c(1, 7, 13, 3, 8, 3, 1, 1, false),
  c(3, 5, 6, 17, 20, 3, 1, 1, true),
  c(1, 7, 13, 5, 3, 3, 1, 1, true),
  c(2, 7, 13, 3, 5, 5, 2, 1, false),
  c(3, 8, 9, 4, 8, 1, 1, 0, true),
  c(2, 5, 7, 7, 5, 1, 1, 0, false),
  c(1, 7, 13, 8, 4, 3, 2, 1, false),
  c(2, 6, 7, 1, 17, 3, 2, 0, true),
];

// Shapes that exercise the generic kernels' own paths (flipped-weight dL/dx, 5x5, stride 2).
const GPU_PATH_CASES: Case[] = [
  c(2, 7, 13, 8, 12, 3, 1, 1, true),
  c(1, 5, 6, 3, 4, 3, 1, 0, false),
  c(3, 8, 9, 5, 7, 1, 1, 0, true),
  c(2, 9, 11, 3, 6, 5, 1, 2, false),
  c(1, 7, 13, 8, 4, 3, 2, 1, false),
];

// Every case under both kernel families, whatever this machine's adapter would pick.
for (const kernels of ["rows", "generic"] as const) {
  for (const k of [...CASES, ...GPU_PATH_CASES]) {
    const name = `x [${k.N}, ${k.H}, ${k.W}, ${k.Cin}] w ${k.K}x${k.K}x${k.Cin}x${k.Cout} ` +
      `stride ${k.stride} pad ${k.padding}${k.bias ? " bias" : ""}`;
    Deno.test({
      name: `conv2d (${kernels} kernels) matches the reference: ${name}`,
      sanitizeResources: false,
      sanitizeOps: false,
      fn: async () => checkCase(await testEngine(kernels), k),
    });
  }
}

/** Runs all four passes of case `k` and compares them with the float64 reference. */
async function checkCase(e: Engine, k: Case): Promise<void> {
  const g: ref.ConvGeometry = {
    N: k.N,
    H: k.H,
    W: k.W,
    Cin: k.Cin,
    Cout: k.Cout,
    KH: k.K,
    KW: k.K,
    stride: k.stride,
    padding: k.padding,
  };
  const { OH, OW } = outputSize(g);
  const opts = { stride: k.stride, padding: k.padding };
  const seed = k.N * 1000 + k.Cin * 10 + k.Cout;
  const x = randomTensor(e, [k.N, k.H, k.W, k.Cin], seed);
  const w = randomTensor(e, [k.K, k.K, k.Cin, k.Cout], seed + 1);
  const b = randomTensor(e, [k.Cout], seed + 2);
  const dy = randomTensor(e, [k.N, OH, OW, k.Cout], seed + 3);
  const bias = k.bias ? b.t : null;

  const y = conv2dForward(x.t, w.t, bias, opts);
  const dx = conv2dBackwardData(dy.t, w.t, x.t.shape, opts);
  const dw = conv2dBackwardWeight(x.t, dy.t, w.t.shape, opts);
  const db = conv2dBackwardBias(dy.t);
  assertClose(await y.read(), ref.conv2dForward(x.ref, w.ref, k.bias ? b.ref : null, g), "y");
  assertClose(await dx.read(), ref.conv2dBackwardData(dy.ref, w.ref, g), "dx");
  assertClose(await dw.read(), ref.conv2dBackwardWeight(x.ref, dy.ref, g), "dw");
  assertClose(await db.read(), ref.conv2dBackwardBias(dy.ref, g), "dbias");
  for (const t of [x.t, w.t, b.t, dy.t, y, dx, dw, db]) t.dispose();
}

gpuTest("conv2d records a backward that skips the gradients nobody needs", async (e) => {
  const g: ref.ConvGeometry = {
    N: 2,
    H: 6,
    W: 5,
    Cin: 4,
    Cout: 8,
    KH: 3,
    KW: 3,
    stride: 1,
    padding: 1,
  };
  const x = randomTensor(e, [2, 6, 5, 4], 11);
  const w = randomTensor(e, [3, 3, 4, 8], 12);
  const b = randomTensor(e, [8], 13);
  const dy = randomTensor(e, [2, 6, 5, 8], 14);
  // Dispatches of the backward with and without dx: skipping dx must skip its kernel.
  const backwardDispatches = () => {
    const y = conv2d(x.t, w.t, b.t, { padding: 1 });
    const before = e.stats.dispatches;
    const grads = backwardOf(e, y, dy.t, [x.t, w.t, b.t]);
    return { y, grads, dispatches: e.stats.dispatches - before };
  };
  x.t.requiresGrad = true;
  w.t.requiresGrad = true;
  b.t.requiresGrad = true;
  const all = backwardDispatches();
  x.t.requiresGrad = false;
  const { y, grads: [dx, dw, db], dispatches } = backwardDispatches();
  assert.equal(dx, null);
  assert.ok(
    dispatches < all.dispatches,
    `${dispatches} dispatches without dx, ${all.dispatches} with`,
  );
  assertClose(await y.read(), ref.conv2dForward(x.ref, w.ref, b.ref, g), "y");
  assertClose(await dw!.read(), ref.conv2dBackwardWeight(x.ref, dy.ref, g), "dw");
  assertClose(await db!.read(), ref.conv2dBackwardBias(dy.ref, g), "dbias");
});

gpuTest("conv2d names the op and both shapes when they do not fit", async (e) => {
  const x = e.tensor(new Float32Array(1 * 7 * 13 * 3), [1, 7, 13, 3]);
  const w = e.tensor(new Float32Array(3 * 3 * 5 * 8), [3, 3, 5, 8]);
  throwsWith(
    () => conv2d(x, w, null),
    "conv2d: input channels differ (3 vs 5), x [1, 7, 13, 3] and w [3, 3, 5, 8]",
  );
  const w2 = e.tensor(new Float32Array(9 * 3 * 3 * 8), [9, 3, 3, 8]);
  throwsWith(() => conv2d(x, w2, null), "x [1, 7, 13, 3] and w [9, 3, 3, 8]");
  const flat = e.tensor(new Float32Array(7 * 13 * 3), [7, 13, 3]);
  throwsWith(() => conv2d(flat, w, null), "conv2d: expected x of rank 4");
  const w3 = e.tensor(new Float32Array(3 * 3 * 3 * 8), [3, 3, 3, 8]);
  const bias = e.tensor(new Float32Array(5), [5]);
  throwsWith(() => conv2d(x, w3, bias), "conv2d: bias [5] does not match w [3, 3, 3, 8]");
  await e.sync();
  for (const t of [x, w, w2, flat, w3, bias]) t.dispose();
});

Deno.test("generated conv2d kernels match src/ops/conv2d_kernels.ts", () => {
  for (const v of CONV_KERNEL_VARIANTS) {
    const file = Deno.readTextFileSync(new URL(`../kernels/${v.file}`, import.meta.url));
    if (file !== kernelSource(v)) {
      throw new Error(
        `kernels/${v.file} is stale: run deno run --allow-write src/ops/conv2d_kernels.ts`,
      );
    }
  }
});

Deno.test("conv2dPrograms names the kernels that compute each pass", () => {
  const cpu = conv2dPrograms([32, 96, 96, 16], [3, 3, 16, 16], { padding: 1 });
  const kernels = (ps: { kernel: string }[]) => ps.map((p) => p.kernel).join(" ");
  if (cpu.forward.kernel !== "generated/conv2d_rows_vec4.wgsl") throw new Error(cpu.forward.kernel);
  if (kernels(cpu.backwardData) !== "conv2d_flip_weights.wgsl generated/conv2d_rows_vec4.wgsl") {
    throw new Error(kernels(cpu.backwardData));
  }
  if (kernels(cpu.backwardWeight) !== "generated/conv2d_wgrad_vec4.wgsl") {
    throw new Error(kernels(cpu.backwardWeight));
  }
  const first = conv2dPrograms([32, 96, 96, 1], [3, 3, 1, 16], { padding: 1 });
  if (first.forward.kernel !== "generated/conv2d_rows_scalar.wgsl") {
    throw new Error(first.forward.kernel);
  }
  const gpu = conv2dPrograms([32, 96, 96, 16], [3, 3, 16, 16], { padding: 1 }, "generic");
  if (gpu.forward.kernel !== "conv2d_forward_generic.wgsl") throw new Error(gpu.forward.kernel);
  // dL/dx of a stride-1 conv is a forward conv of dy with flipped weights; with a stride it
  // needs the generic dL/dx kernel.
  if (kernels(gpu.backwardData) !== "conv2d_flip_weights.wgsl conv2d_forward_generic.wgsl") {
    throw new Error(kernels(gpu.backwardData));
  }
  // A 1x1 stride-1 conv is a matrix product on every adapter.
  for (const policy of ["rows", "generic"] as const) {
    const pw = conv2dPrograms([4, 9, 9, 32], [1, 1, 32, 16], {}, policy);
    const all = kernels([pw.forward, ...pw.backwardData, ...pw.backwardWeight]);
    if (all !== "matmul.wgsl matmul.wgsl matmul.wgsl") throw new Error(all);
  }
  const strided = conv2dPrograms([4, 9, 9, 8], [3, 3, 8, 8], { stride: 2, padding: 1 }, "generic");
  if (kernels(strided.backwardData) !== "conv2d_backward_data_generic.wgsl") {
    throw new Error(kernels(strided.backwardData));
  }
  // One invocation per output element, 64 per workgroup.
  if (gpu.forward.dispatch[0] * gpu.forward.dispatch[1] < 32 * 96 * 96 * 16 / 64) {
    throw new Error(`dispatch ${gpu.forward.dispatch}`);
  }
});
