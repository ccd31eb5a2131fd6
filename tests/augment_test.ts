import assert from "node:assert/strict";
import {
  Augmenter,
  DEFAULT_RANGES,
  drawAugments,
  IDENTITY,
  type ImageAugment,
  packBytes,
  packParams,
  PARAM_HEADER,
  PARAM_STRIDE,
} from "../src/ops/augment.ts";
import { augmentReference } from "../src/ref/augment.ts";
import { mulberry32 } from "../src/util.ts";
import { assertClose, gpuTest } from "./helpers.ts";
import type { Engine } from "../src/engine/engine.ts";

const MEAN = 0.31;
const STD = 0.27;

/** Random bytes: half pure noise (worst case for interpolation), half smooth blobs. */
function randomImages(count: number, size: number, seed: number): Uint8Array {
  const r = mulberry32(seed);
  const out = new Uint8Array(count * size * size);
  for (let b = 0; b < count; b++) {
    const fx = 1 + 3 * r(), fy = 1 + 3 * r();
    for (let i = 0; i < size * size; i++) {
      const x = (i % size) / size, y = Math.floor(i / size) / size;
      out[b * size * size + i] = b % 2 === 0
        ? Math.floor(r() * 256)
        : Math.round(127.5 + 127.5 * Math.sin(fx * 6 * x) * Math.cos(fy * 6 * y));
    }
  }
  return out;
}

/** Uploads bytes and params, runs the kernel, reads the result. */
async function augmentOnGpu(
  e: Engine,
  size: number,
  bytes: Uint8Array,
  params: Float32Array,
  outSide = size,
): Promise<Float32Array> {
  const aug = new Augmenter(e, size);
  return await e.tidy(() => {
    const pixels = e.tensor(packBytes(bytes), [packBytes(bytes).length]);
    const p = e.tensor(params, [params.length]);
    return aug.run(pixels, p, outSide);
  }).read();
}

// Bilinear sampling with a zero border is continuous in the source coordinate, so the f32
// coordinate the GPU computes (off from the float64 one by ~1e-5 px at S = 96) moves the
// sample by at most 1e-5 px times the steepest step between neighbours (255 levels for the
// noise images): ~1e-5 in [0, 1] units, ~4e-5 after dividing by std, against outputs of
// magnitude ~2.5. A floor() that lands on the other side of an integer picks the other pair
// of taps with a weight of ~0 or ~1, which gives the same value. The remaining error is the
// GPU's pow (a few ulp). Hence the full random ranges and the 1e-4 relative tolerance.
for (const [size, count] of [[13, 1], [13, 3], [16, 4], [96, 3]]) {
  gpuTest(`augment ${count} x ${size}x${size} matches the reference (random params)`, async (e) => {
    const bytes = randomImages(count, size, size * 7 + count);
    const params = packParams(drawAugments(size, count, count, true, size), size, MEAN, STD);
    const got = await augmentOnGpu(e, size, bytes, params);
    assertClose(got, augmentReference(bytes, params, size), "augment");
  });
}

// Resampling to a smaller side (training's low-resolution phase), odd sides included.
for (const [size, outSide, count] of [[13, 9, 2], [16, 11, 3], [96, 64, 2]]) {
  gpuTest(
    `augment ${count} x ${size}x${size} -> ${outSide}x${outSide} matches the reference`,
    async (e) => {
      const bytes = randomImages(count, size, size * 5 + outSide);
      const augs = drawAugments(outSide, 3, count, true, size);
      const params = packParams(augs, size, MEAN, STD, outSide);
      const got = await augmentOnGpu(e, size, bytes, params, outSide);
      assert.equal(got.length, count * outSide * outSide);
      assertClose(got, augmentReference(bytes, params, size, outSide), "augment resampled");
    },
  );
}

gpuTest("identity resampling keeps pixel centres aligned (a ramp stays a ramp)", async (e) => {
  // Bilinear sampling reproduces a linear ramp exactly, so output pixel x must show the ramp
  // at x_in = r x + (r - 1) / 2 with r = size / outSide: the centre-aligned map, worked out
  // here independently of packParams.
  const [size, outSide] = [24, 16];
  const ramp = (x: number, y: number) => 20 + 8 * x + 2 * y;
  const bytes = Uint8Array.from({ length: size * size }, (_, i) => ramp(i % size, (i / size) | 0));
  const params = packParams([IDENTITY], size, 0, 1, outSide);
  const got = await augmentOnGpu(e, size, bytes, params, outSide);
  const r = size / outSide;
  const want = Float64Array.from(
    { length: outSide * outSide },
    (_, i) => ramp(r * (i % outSide) + (r - 1) / 2, r * ((i / outSide) | 0) + (r - 1) / 2) / 255,
  );
  assertClose(got, want, "ramp", 1e-5);
});

gpuTest(
  "augment extreme params (big rotation, zoom, clamp, gamma) matches the reference",
  async (e) => {
    const size = 21;
    const augs: ImageAugment[] = [
      { rotation: 2.5, shiftX: 30, shiftY: -4, scale: 0.5, brightness: 0, contrast: 1, gamma: 1 },
      { rotation: -0.3, shiftX: 0, shiftY: 0, scale: 2, brightness: 0.4, contrast: 2, gamma: 0.5 },
      {
        rotation: 0,
        shiftX: 0.5,
        shiftY: -0.25,
        scale: 1,
        brightness: -0.6,
        contrast: 1,
        gamma: 2,
      },
    ];
    const bytes = randomImages(augs.length, size, 5);
    const params = packParams(augs, size, MEAN, STD);
    assertClose(
      await augmentOnGpu(e, size, bytes, params),
      augmentReference(bytes, params, size),
      "augment",
    );
  },
);

for (const [size, count] of [[13, 1], [13, 3], [96, 2]]) {
  gpuTest(
    `identity params return (u8/255 - mean)/std exactly, ${count} x ${size}x${size}`,
    async (e) => {
      const bytes = randomImages(count, size, 99 + size);
      bytes[0] = 0;
      bytes[1] = 255;
      const aug = new Augmenter(e, size);
      const { params } = aug.params(1, 2, count, false, MEAN, STD);
      const got = await augmentOnGpu(e, size, bytes, params);
      const f = Math.fround;
      const [mean, std] = [f(MEAN), f(STD)];
      // Lavapipe divides like IEEE (correctly rounded), so the result is bit-exact there;
      // WGSL lets hardware divide within 2.5 ulp, so elsewhere allow that much.
      const ulps = e.info.isFallback ? 0 : 6e-7;
      for (let i = 0; i < bytes.length; i++) {
        const want = f(f(f(bytes[i] / 255) - mean) / std);
        if (!(Math.abs(got[i] - want) <= ulps * Math.abs(want))) {
          throw new Error(`element ${i} (byte ${bytes[i]}): got ${got[i]}, want ${want}`);
        }
      }
      assertClose(got, augmentReference(bytes, params, size), "identity vs reference", 1e-6);
    },
  );
}

Deno.test("params are seeded: same seed and step give the same params, others differ", () => {
  const draw = (seed: number, step: number, augment = true) =>
    packParams(drawAugments(seed, step, 5, augment, 96), 96, MEAN, STD);
  assert.deepStrictEqual(draw(7, 3), draw(7, 3));
  assert.notDeepStrictEqual(draw(7, 3), draw(8, 3));
  assert.notDeepStrictEqual(draw(7, 3), draw(7, 4));
  // Images within a batch differ, and a prefix of a batch does not depend on its size.
  const p = draw(7, 3);
  assert.notDeepStrictEqual(p.slice(4, 16), p.slice(16, 28));
  assert.deepStrictEqual(
    drawAugments(7, 3, 2, true, 96),
    drawAugments(7, 3, 5, true, 96).slice(0, 2),
  );
  // Evaluation ignores the seed.
  assert.deepStrictEqual(draw(7, 3, false), draw(8, 9, false));
  assert.deepStrictEqual(drawAugments(1, 1, 3, false, 96), [IDENTITY, IDENTITY, IDENTITY]);
});

Deno.test("random params stay inside the documented ranges", () => {
  const augs = drawAugments(3, 0, 2000, true, 100);
  const within = (v: number, lo: number, hi: number) => v >= lo && v <= hi;
  const r = DEFAULT_RANGES;
  const rad = r.rotationDeg * Math.PI / 180;
  for (const a of augs) {
    assert(within(a.rotation, -rad, rad));
    assert(within(a.shiftX, -100 * r.shift, 100 * r.shift));
    assert(within(a.shiftY, -100 * r.shift, 100 * r.shift));
    assert(within(a.scale, 1 - r.scale, 1 + r.scale));
    assert(within(a.brightness, -r.brightness, r.brightness));
    assert(within(a.contrast, ...r.contrast));
    assert(within(a.gamma, ...r.gamma));
  }
  // And they fill them: 2000 uniform draws come within 1% of each end.
  const rotations = augs.map((a) => a.rotation);
  assert(Math.max(...rotations) > 0.99 * rad && Math.min(...rotations) < -0.99 * rad);
  const scales = augs.map((a) => a.scale);
  assert(Math.max(...scales) > 1 + 0.99 * r.scale && Math.min(...scales) < 1 - 0.99 * r.scale);
  // Gamma is log-uniform, so about half the draws brighten and half darken.
  const below = augs.filter((a) => a.gamma < 1).length / augs.length;
  assert(within(below, 0.45, 0.55), `gamma < 1 in ${below} of draws`);
});

Deno.test("param layout: header and identity rows", () => {
  const p = packParams([IDENTITY, IDENTITY], 13, MEAN, STD);
  assert.deepStrictEqual(p.length, PARAM_HEADER + 2 * PARAM_STRIDE);
  assert.deepStrictEqual(Array.from(p.slice(0, 4)), [Math.fround(MEAN), Math.fround(STD), 2, 0]);
  assert.deepStrictEqual(Array.from(p.slice(4, 13)), [1, 0, 0, 0, 1, 0, 1, 0, 1]);
});

gpuTest(
  "geometry conventions: +1 px shift moves content right, 90° rotation about the centre",
  async (e) => {
    const size = 5;
    const bytes = Uint8Array.from({ length: size * size }, (_, i) => i * 10);
    const params = packParams(
      [
        { ...IDENTITY, shiftX: 1 },
        { ...IDENTITY, rotation: Math.PI / 2 },
      ],
      size,
      0,
      1,
    );
    const got = await augmentOnGpu(e, size, Uint8Array.from([...bytes, ...bytes]), params);
    const ref = augmentReference(Uint8Array.from([...bytes, ...bytes]), params, size);
    assertClose(got, ref, "geometry");
    const at = (b: number, x: number, y: number) => Math.round(ref[b * 25 + y * size + x] * 255);
    for (let y = 0; y < size; y++) {
      assert.deepStrictEqual(at(0, 0, y), 0); // shifted in from outside: black
      for (let x = 1; x < size; x++) assert.deepStrictEqual(at(0, x, y), bytes[y * size + x - 1]);
    }
    // Output (x, y) samples p = c + R(-90°)(q - c), i.e. input (y, 4 - x).
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        assert.deepStrictEqual(
          at(1, x, y),
          bytes[(size - 1 - x) * size + y],
        );
      }
    }
  },
);

gpuTest(
  "steady state: repeated batches allocate no buffers and compile no pipelines",
  async (e) => {
    const size = 24;
    const aug = new Augmenter(e, size);
    // The NaN pre-fill of the shared test engine compiles one fill pipeline per buffer size.
    e.fillOutputsWithNaN = false;
    const before = e.stats.pipelines;
    try {
      const step = (k: number, count: number) =>
        e.tidy(() => {
          const bytes = randomImages(count, size, k);
          const pixels = e.tensor(packBytes(bytes), [packBytes(bytes).length]);
          const { params } = aug.params(1, k, count, true, MEAN, STD);
          aug.run(pixels, e.tensor(params, [params.length]));
        });
      step(0, 3);
      step(1, 2); // a partial batch: new buffer sizes, same pipeline
      await e.sync();
      const [allocations, compiled] = [e.pool.allocations, e.stats.pipelines - before];
      for (let k = 2; k < 8; k++) step(k, k % 2 ? 2 : 3);
      await e.sync();
      assert.deepStrictEqual(e.pool.allocations, allocations);
      assert.deepStrictEqual(e.stats.pipelines - before, compiled);
      assert(compiled <= 1, `${compiled} pipelines compiled (augment only)`);
    } finally {
      e.fillOutputsWithNaN = true;
    }
  },
);
