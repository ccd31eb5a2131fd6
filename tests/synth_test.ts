/**
 * The synthetic hand generator: maturity follows age and sex, the population looks like
 * RSNA's, and the written folder loads through the real pipeline.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadImageSet } from "../src/data/load.ts";
import {
  maturityYears,
  radiusFusion,
  renderHand,
  sampleSubject,
  visibleCarpals,
  writeSynthDataset,
} from "../src/data/synth.ts";
import { mulberry32 } from "../src/util.ts";
import { main } from "../tasks/synth.ts";

Deno.test("maturity: carpals appear with age, girls earlier; fusion in adolescence", () => {
  let prevM = 0, prevF = 0, girlsAhead = 0;
  for (let age = 1; age <= 228; age++) {
    const m = visibleCarpals(age, 1), f = visibleCarpals(age, 0);
    assert(m >= prevM && f >= prevF, `monotone at ${age}`);
    assert(f >= m, `girls never behind at ${age}`);
    if (f > m) girlsAhead++;
    prevM = m;
    prevF = f;
  }
  assert.equal(visibleCarpals(1, 1), 0);
  assert.equal(visibleCarpals(12, 1), 2, "capitate and hamate in infancy");
  assert.equal(visibleCarpals(228, 1), 8);
  assert(girlsAhead > 20, `girls ahead for ${girlsAhead} months of age`);
  assert.equal(radiusFusion(150, 1), 0);
  assert.equal(radiusFusion(150, 0), 0);
  assert(radiusFusion(185, 0) > 0.9 && radiusFusion(185, 1) < 0.1, "girls fuse ~2 years earlier");
  assert(radiusFusion(228, 1) > 0.99);
  assert(Math.abs(maturityYears(120, 0) - maturityYears(120, 1) - 1.3) < 0.01);
});

Deno.test("older hands show more bone (clean render, same pose)", () => {
  const bone = (age: number, male: 0 | 1) => {
    const img = renderHand({ id: "x", male, boneage: age, chronoAge: age }, {
      size: 128,
      rand: mulberry32(1),
      clean: true,
    });
    return img.reduce((s, v) => s + (v > 0.45 ? 1 : 0), 0);
  };
  const ages = [6, 36, 84, 132, 180];
  for (let k = 1; k < ages.length; k++) {
    assert(bone(ages[k], 1) > bone(ages[k - 1], 1), `male ${ages[k]} vs ${ages[k - 1]}`);
  }
  const img = renderHand(sampleSubject(0, 0), { size: 64, rand: mulberry32(2) });
  assert(img.every((v) => v >= 0 && v <= 1));
});

Deno.test("population: bone age ~ RSNA (mean 127, SD 41, 1..228), ~54% male, seeded", () => {
  const n = 4000;
  const s = Array.from({ length: n }, (_, i) => sampleSubject(5, i));
  const ages = s.map((x) => x.boneage);
  const mean = ages.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(ages.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  assert(Math.abs(mean - 127) < 4, `mean ${mean}`);
  assert(Math.abs(sd - 40) < 4, `sd ${sd}`);
  assert(ages.every((a) => Number.isInteger(a) && a >= 1 && a <= 228));
  const male = s.filter((x) => x.male).length / n;
  assert(Math.abs(male - 0.54) < 0.03, `male ${male}`);
  assert.deepEqual(sampleSubject(5, 17), s[17]);
  assert.notDeepEqual(sampleSubject(6, 17), s[17]);
});

Deno.test("synth folder loads through the pipeline with its labels", async () => {
  const out = await Deno.makeTempDir({ prefix: "synth_" });
  const subjects = await writeSynthDataset(out, { n: 10, seed: 3, size: 96 });
  const csv = await Deno.readTextFile(join(out, "boneage-training-dataset.csv"));
  assert.equal(csv.split("\n")[0], "id,boneage,male");
  const { set, report } = await loadImageSet(out, {
    size: 48,
    cacheDir: false,
    quiet: true,
    strict: true,
  });
  assert.equal(report.used, 10);
  assert.deepEqual(set.ids, subjects.map((s) => s.id));
  assert.deepEqual(Array.from(set.boneage), subjects.map((s) => s.boneage));
  assert.deepEqual(Array.from(set.male), subjects.map((s) => s.male));
  assert(set.boneage.every((a) => a >= 1 && a <= 228));
  // Images differ from each other and are not blank.
  const px = 48 * 48;
  const mean = (i: number) =>
    set.images.subarray(i * px, (i + 1) * px).reduce((a, b) => a + b, 0) / px;
  assert(mean(0) > 5 && mean(0) !== mean(1));

  const cli = await Deno.makeTempDir({ prefix: "synth_cli_" });
  await main(["--out", cli, "--n", "3", "--size", "64", "--seed", "3"]);
  const lines = (await Deno.readTextFile(join(cli, "boneage-training-dataset.csv"))).trim().split(
    "\n",
  );
  assert.deepEqual(lines, csv.trim().split("\n").slice(0, 4), "same seed, same first subjects");
  const bytes = await Deno.readFile(join(cli, "boneage-training-dataset", "1.png"));
  assert.equal(new DataView(bytes.buffer).getUint32(16), 64, "PNG width");
  await Deno.remove(out, { recursive: true });
  await Deno.remove(cli, { recursive: true });
});
