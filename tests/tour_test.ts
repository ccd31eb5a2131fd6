/**
 * `deno task tour`'s library half (`src/tour/`) on a generated radiograph with the `small`
 * model: every op it lists matches its float64 twin, names kernels that exist, and the
 * narration fits a 100-column terminal.
 *
 * Tolerance: 1e-4 normwise relative error (`max |gpu - ref| / max |ref|`), the same as the
 * per-op tests. The twins are fed the GPU's own inputs, so errors do not compound through the
 * network; f32 accumulation over at most 128 * 9 * 144 terms stays near 1e-6 in practice.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { Engine } from "../src/engine/engine.ts";
import {
  formatTour,
  runTour,
  saveTourImages,
  TOUR_TOLERANCE,
  type TourResult,
} from "../src/app/tour/mod.ts";
import { decodePng, encodeGrayPng } from "../src/data/png.ts";
import { mulberry32 } from "../src/util.ts";
import { runTaskProcess } from "./helpers.ts";

let tour: Promise<TourResult> | null = null;

/** One tour for all tests below, on an engine that fills every new output with NaN first. */
function theTour(): Promise<TourResult> {
  tour ??= (async () => {
    const engine = await Engine.create({ fillOutputsWithNaN: true });
    try {
      return await runTour({ engine });
    } finally {
      engine.destroy();
    }
  })();
  return tour;
}

function tourTest(name: string, fn: (r: TourResult) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => fn(await theTour()),
  });
}

tourTest("every op of the step matches its float64 twin", (r) => {
  const forward = r.ops.filter((o) => o.stage === "forward");
  const backward = r.ops.filter((o) => o.stage === "backward");
  // small: 28 trunk layers, pool, concat, linear, relu, linear, loss; each has a backward.
  assert.equal(forward.length, 34);
  assert.equal(backward.length, forward.length);
  assert.deepEqual(r.ops.filter((o) => o.stage === "update").map((o) => o.op), ["adam"]);
  assert.deepEqual(
    backward.map((o) => `${o.op} ${o.layer}`),
    forward.map((o) => `${o.op} ${o.layer}`).reverse(),
    "backward visits the forward ops in reverse",
  );
  for (const op of r.ops) {
    assert.ok(op.checks.length > 0, `${op.stage} ${op.op} ${op.layer} checks nothing`);
    for (const c of op.checks) {
      assert.ok(
        c.relError <= TOUR_TOLERANCE,
        `${op.stage} ${op.op} ${op.layer} ${c.name}: relative error ${c.relError} > ${TOUR_TOLERANCE}`,
      );
    }
  }
  // Every parameter is checked by Adam; the image got a gradient (for the saliency picture).
  const adam = r.ops.at(-1)!;
  assert.equal(adam.checks.length, r.params.length);
  const firstConv = backward.at(-1)!;
  assert.deepEqual(firstConv.checks.map((c) => c.name), ["dL/d(image)", "dL/d(trunk.0.weight)"]);
  assert.ok(Math.abs(r.loss - r.lossRef) <= 1e-5 * Math.max(1, Math.abs(r.lossRef)));
  // The ops are the tape's entries of BoneAgeNet.forward, named by the layer that recorded them.
  assert.deepEqual(forward.slice(0, 3).map((o) => `${o.op} ${o.layer}`), [
    "conv2d trunk.0",
    "batchNorm2d trunk.1",
    "relu trunk.2",
  ]);
  assert.deepEqual(forward.slice(-5).map((o) => `${o.op} ${o.layer}`), [
    "concatFeatures sex",
    "linear head.0",
    "relu head.1",
    "linear head.2",
    "l1Loss loss",
  ]);
  assert.ok(Number.isFinite(r.monthsBefore) && Number.isFinite(r.monthsAfter));
  // L1 loss: one step towards the target moves the prediction towards it.
  assert.ok(
    Math.abs(r.monthsAfter - r.targetMonths) < Math.abs(r.monthsBefore - r.targetMonths),
    `prediction ${r.monthsBefore} -> ${r.monthsAfter}, target ${r.targetMonths}`,
  );
  assert.ok(Math.abs(r.adam.after - r.adam.afterRef) <= 1e-6);
});

tourTest("every listed kernel exists under kernels/ with the listed workgroup size", (r) => {
  let dispatches = 0;
  for (const op of r.ops) {
    assert.ok(op.dispatches.length > 0, `${op.op} ${op.layer} lists no kernel`);
    for (const d of op.dispatches) {
      const file = new URL(`../kernels/${d.kernel}`, import.meta.url);
      assert.ok(existsSync(file), `${d.kernel} is not in kernels/`);
      const source = Deno.readTextFileSync(file);
      assert.match(
        source,
        new RegExp(`fn\\s+${d.entryPoint}\\s*\\(`),
        `${d.kernel}: ${d.entryPoint}`,
      );
      assert.ok(d.invocations >= 1 && d.workgroupSize[0] >= 1);
      if (r.ops.some((o) => o.ms !== null)) assert.ok(d.ms !== null && d.ms >= 0);
      dispatches++;
    }
  }
  assert.equal(dispatches, r.dispatchCount, "every recorded dispatch belongs to one op");
  assert.equal(r.submits, 1, "the step is one queue submit");
});

tourTest("the narration fits 100 columns and names every op", (r) => {
  const lines = formatTour(r);
  const wide = lines.filter((l) => l.length > 100);
  assert.deepEqual(wide, [], "lines wider than 100 columns");
  const text = lines.join("\n");
  for (const op of r.ops) assert.ok(text.includes(` ${op.stage} ${op.op} ${op.layer}`));
  assert.ok(!text.includes("MISMATCH"));
});

tourTest("--save writes the input, feature maps and the input gradient as PNGs", async (r) => {
  const dir = await Deno.makeTempDir({ prefix: "tour_test_" });
  try {
    const files = await saveTourImages(r, dir);
    assert.deepEqual(
      files.map((f) => f.file.slice(dir.length + 1)),
      ["input.png", "features_trunk.5.png", "features_trunk.26.png", "input_gradient.png"],
    );
    for (const { file } of files) {
      const png = decodePng(await Deno.readFile(file));
      assert.ok(png && png.width >= 96 && png.height >= 96, file);
      assert.ok(png.data.some((v) => v > 0), `${file} is black`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno task tour prepares its radiograph by the checkpoint's image recipe",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const generated = await runTaskProcess("tour", []);
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(
      generated.stdout.replace(/\s+/g, " "),
      /prepared by the image recipe of the checkpoint in weights: the hand registered upright/,
    );
    // Noise has no hand: the registered recipe stops, as predict does, unless asked.
    const dir = await Deno.makeTempDir();
    try {
      const r = mulberry32(5);
      const noise = Uint8Array.from({ length: 150 * 120 }, () => Math.floor(256 * r()));
      await Deno.writeFile(`${dir}/noise.png`, encodeGrayPng(noise, 150, 120));
      const refused = await runTaskProcess("tour", ["--image", `${dir}/noise.png`, "--sex", "F"]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /no hand found in .*noise\.png.*--unregistered/s);
      const forced = await runTaskProcess("tour", [
        "--image",
        `${dir}/noise.png`,
        "--sex",
        "F",
        "--unregistered",
      ]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stdout.replace(/\s+/g, " "), /stretched to the square, not registered/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
