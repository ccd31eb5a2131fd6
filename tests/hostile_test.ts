/**
 * Files from other people's disks: each probe below must be refused with an error that names
 * the file (and tensor, key or line), without reading, writing or deleting anything outside
 * the task's folders, and within bounded memory. The fuzz cases mutate valid files at random
 * (seeded) and require every outcome to be a load or the project's own `DataError`.
 */
import assert from "node:assert/strict";
import { crc32, deflateSync } from "node:zlib";
import { parseCheckpointMeta } from "../src/app/checkpoint.ts";
import { decodeGray, jpegSize } from "../src/data/image.ts";
import { readLabels } from "../src/data/layout.ts";
import { loadImageSet } from "../src/data/load.ts";
import {
  assemblePng,
  decodePng,
  encodeGrayPng,
  ihdrData,
  MAX_IMAGE_PIXELS,
} from "../src/data/png.ts";
import { DataError } from "../src/data/report.ts";
import { writeSynthDataset } from "../src/data/synth.ts";
import { getConfig } from "../src/model/configs.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/app/safetensors.ts";
import { compareResumeSettings, type TrainSettings } from "../src/app/training.ts";
import { learningRate } from "../src/app/schedule.ts";
import { rng, throwsWith } from "./helpers.ts";

// ---- PNG ----------------------------------------------------------------------------------

Deno.test("PNG: a tiny image whose data inflates to 64 MiB is refused, memory bounded", () => {
  const bomb = assemblePng([
    ["IHDR", ihdrData(8, 8, 8, 0)],
    ["IDAT", new Uint8Array(deflateSync(new Uint8Array(64 * 2 ** 20)))],
    ["IEND", new Uint8Array()],
  ]);
  const before = Deno.memoryUsage().rss;
  throwsWith(() => decodePng(bomb), "inflates to more than the 72 bytes its header implies");
  assert.ok(Deno.memoryUsage().rss - before < 32 * 2 ** 20, "no 64 MiB buffer");
});

Deno.test("the browser's zlib bounds inflating and computes node's CRC-32", async () => {
  const page = await import("../src/app/browser/zlib.ts");
  const bomb = new Uint8Array(deflateSync(new Uint8Array(4 * 2 ** 20)));
  assert.equal(page.inflateSync(bomb, { maxOutputLength: 4 * 2 ** 20 }).length, 4 * 2 ** 20);
  assert.throws(
    () => page.inflateSync(bomb, { maxOutputLength: 1000 }),
    (e: Error & { code?: string }) => e.code === "ERR_BUFFER_TOO_LARGE",
  );
  const data = Uint8Array.from({ length: 999 }, (_, i) => (i * 31) % 256);
  assert.equal(page.crc32(data), crc32(data));
});

Deno.test("train's loader skips and counts a PNG bomb like any corrupt image", async () => {
  const dir = await Deno.makeTempDir();
  await writeSynthDataset(dir, { n: 4, seed: 2, size: 32 });
  await Deno.writeFile(
    `${dir}/boneage-training-dataset/3.png`,
    assemblePng([["IHDR", ihdrData(65535, 65535, 1, 0)], [
      "IDAT",
      deflateSync(new Uint8Array(1 << 16)),
    ], [
      "IEND",
      new Uint8Array(),
    ]]),
  );
  const { set, report } = await loadImageSet(dir, { size: 16, workers: 0, quiet: true });
  assert.deepEqual(set.ids, ["1", "2", "4"]);
  assert.equal(report.skipped.length, 1);
  assert.equal(report.skipped[0].reason, "corrupt PNG");
  assert.match(report.skipped[0].detail, /65535x65535/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("PNG: declared sizes over 2^26 pixels, bad depths and palette indices are refused", () => {
  const end: [string, Uint8Array][] = [["IDAT", deflateSync(new Uint8Array(4))], [
    "IEND",
    new Uint8Array(),
  ]];
  throwsWith(
    () => decodePng(assemblePng([["IHDR", ihdrData(65535, 65535, 1, 0)], ...end])),
    "65535x65535",
    String(MAX_IMAGE_PIXELS),
  );
  throwsWith(() => decodePng(assemblePng([["IHDR", ihdrData(0, 5, 8, 0)], ...end])), "empty 0x5");
  throwsWith(
    () => decodePng(assemblePng([["IHDR", ihdrData(4, 4, 16, 3)], ...end])),
    "bit depth 16",
  );
  throwsWith(() => decodePng(assemblePng([["IHDR", ihdrData(4, 4, 4, 2)], ...end])), "bit depth 4");
  // Palette of 2 entries, a pixel using entry 7.
  const rows = new Uint8Array([0, 0, 7]);
  throwsWith(
    () =>
      decodePng(assemblePng([
        ["IHDR", ihdrData(2, 1, 8, 3)],
        ["PLTE", new Uint8Array(6)],
        ["IDAT", deflateSync(rows)],
        ["IEND", new Uint8Array()],
      ])),
    "palette entry 7 of 2",
  );
});

Deno.test("PNG: a CRC mismatch is an error", () => {
  const good = encodeGrayPng(Uint8Array.from({ length: 35 }, (_, i) => i + 1), 7, 5);
  assert.ok(decodePng(good));
  const bad = good.slice();
  bad[bad.length - 20] ^= 1; // inside IDAT
  throwsWith(() => decodePng(bad), "fails its CRC check");
});

Deno.test("JPEG: the frame header's size is checked before decoding", async () => {
  // SOI, then SOF0 declaring 60000 x 60000 (1 component), then EOI.
  const sof = [0xff, 0xc0, 0, 11, 8, 0xea, 0x60, 0xea, 0x60, 1, 1, 0x11, 0];
  const bytes = new Uint8Array([0xff, 0xd8, ...sof, 0xff, 0xd9]);
  assert.deepEqual(jpegSize(bytes), { width: 60000, height: 60000 });
  let message = "";
  await decodeGray(bytes).catch((e) => message = e.message);
  assert.match(message, /JPEG declares 60000x60000 pixels/);
});

Deno.test("predict on a huge declared PNG fails within seconds, naming the file", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/huge.png`;
  await Deno.writeFile(
    file,
    assemblePng([["IHDR", ihdrData(65535, 65535, 1, 0)], [
      "IDAT",
      deflateSync(new Uint8Array(1 << 16)),
    ], [
      "IEND",
      new Uint8Array(),
    ]]),
  );
  const { runTaskProcess } = await import("./helpers.ts");
  const started = Date.now();
  const r = await runTaskProcess("predict", [file, "--sex", "F", "--checkpoint", dir]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`${file}.*65535x65535`));
  assert.ok(Date.now() - started < 30_000);
  await Deno.remove(dir, { recursive: true });
});

// ---- data cache and CSV -------------------------------------------------------------------

Deno.test("cache: an index naming a blob outside the cache is rebuilt, the victim untouched", async () => {
  const root = await Deno.makeTempDir();
  const data = `${root}/data`;
  await writeSynthDataset(data, { n: 6, seed: 1, size: 32 });
  const victim = `${root}/victim.txt`;
  await Deno.writeTextFile(victim, "keep me");
  const first = await loadImageSet(data, { size: 16, workers: 0, quiet: true });
  const cache = `${data}/.cache`;
  const index = [...Deno.readDirSync(cache)].find((e) => e.name.endsWith(".json"))!.name;
  for (const blob of ["../../victim.txt", victim]) {
    const json = JSON.parse(await Deno.readTextFile(`${cache}/${index}`));
    json.blob = blob;
    await Deno.writeTextFile(`${cache}/${index}`, JSON.stringify(json));
    // A changed image makes the loader write a new cache, which deletes the old blob.
    await Deno.writeFile(
      `${data}/boneage-training-dataset/1.png`,
      await Deno.readFile(
        `${data}/boneage-training-dataset/2.png`,
      ),
    );
    const again = await loadImageSet(data, { size: 16, workers: 0, quiet: true });
    assert.equal(again.cache.hits, 0, `${blob}: treated as a corrupt cache`);
    assert.equal(again.set.ids.length, first.set.ids.length);
    assert.equal(await Deno.readTextFile(victim), "keep me", `${blob}: never deleted`);
  }
  await Deno.remove(root, { recursive: true });
});

Deno.test("CSV: ages are plain decimals from 0 to 300; an exact boneage column wins", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/boneage-training-dataset`);
  const rows = ["10", "0x10", "1e2", "Infinity", "301", "-1", "12.5"];
  const lines = ["id,boneage_sd,boneage,male"];
  for (const [i, age] of rows.entries()) {
    lines.push(`${i + 1},3,${age},True`);
    await Deno.writeFile(
      `${dir}/boneage-training-dataset/${i + 1}.png`,
      encodeGrayPng(new Uint8Array(4).fill(9), 2, 2),
    );
  }
  const csv = `${dir}/boneage-training-dataset.csv`;
  await Deno.writeTextFile(csv, lines.join("\n") + "\n");
  const table = await readLabels({
    name: "train",
    csvPath: csv,
    imageDirs: [`${dir}/boneage-training-dataset`],
    requireAge: true,
  });
  assert.deepEqual(table.rows.map((r) => r.boneage), [10, 12.5], "the boneage column, not _sd");
  assert.deepEqual(table.report.skipped.map((s) => s.line), [3, 4, 5, 6, 7]);
  for (const s of table.report.skipped) assert.equal(s.reason, "bad age");
  await Deno.remove(dir, { recursive: true });
});

// ---- safetensors and checkpoint JSON ------------------------------------------------------

const validSafetensors = () =>
  encodeSafetensors(
    new Map([
      ["a", { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
      ["b", { shape: [1], data: new Float32Array([7]) }],
    ]),
    { step: "3" },
  );

/** A safetensors file with the given header object and `dataBytes` bytes of data. */
function withHeader(header: unknown, dataBytes = 28): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

Deno.test("safetensors: malformed headers are refused naming the file and the tensor", () => {
  const t = (shape: unknown, offsets: unknown) => ({ dtype: "F32", shape, data_offsets: offsets });
  const cases: [unknown, string][] = [
    [[1, 2], "header is not a JSON object"],
    [{ a: 5 }, `tensor "a": entry is not an object`],
    [{ a: t([-1], [0, 4]) }, `tensor "a": shape [-1]`],
    [{ a: t([1.5], [0, 4]) }, `tensor "a": shape [1.5]`],
    [{ a: t([1], [0.5, 4]) }, `tensor "a": data_offsets`],
    [{ a: t([1], [8, 4]) }, `tensor "a": bytes 8..4 lie outside`],
    [{ a: t([1], [0, 400]) }, `tensor "a": bytes 0..400 lie outside`],
    [{ a: t([2], [0, 4]) }, `tensor "a": bytes 0..4 do not hold shape [2]`],
    [{ a: t([2], [0, 8]), b: t([2], [4, 12]) }, `tensors "a" and "b" overlap`],
    [{ __metadata__: { step: 3 } }, "__metadata__ is not an object of strings"],
    [{ a: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, `tensor "a": dtype "F64"`],
  ];
  for (const [header, message] of cases) {
    throwsWith(
      () => decodeSafetensors(withHeader(header), "x.safetensors"),
      "x.safetensors",
      message,
    );
  }
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
  throwsWith(() => decodeSafetensors(huge, "x.safetensors"), "header length");
  assert.equal(decodeSafetensors(validSafetensors()).tensors.get("a")!.data[5], 6);
});

/** A valid checkpoint JSON of the tiny config. */
const validMeta = () => ({
  format: 1,
  config: getConfig("tiny"),
  normalization: { pixelMean: 0.3, pixelStd: 0.2, ageMean: 120, ageStd: 40 },
  epoch: 2,
  stepInEpoch: 0,
  globalStep: 12,
  valMae: 20.5,
  bestValMae: 20.5,
  settings: {},
});

Deno.test("checkpoint JSON: values are checked before any tensor is made", () => {
  // deno-lint-ignore no-explicit-any
  type Json = Record<string, any>;
  const cases: [(m: Json) => void, string][] = [
    [(m) => m.normalization.pixelStd = 0, "normalization.pixelStd is 0"],
    [(m) => m.normalization.ageStd = -3, "normalization.ageStd is -3"],
    [(m) => m.normalization.ageMean = null, "normalization.ageMean is null"],
    [(m) => m.config.name = "huge", `config.name "huge" is not one of`],
    [(m) => m.config.trunk[0].channels = 4096, `config differs from the "tiny" configuration`],
    [(m) => m.globalStep = -1, "globalStep is -1"],
    [(m) => m.epoch = 1.5, "epoch is 1.5"],
    [(m) => m.valMae = null, "valMae is missing"],
    [(m) => m.format = 2, "format is 2"],
  ];
  for (const [mutate, message] of cases) {
    const meta = validMeta() as Json;
    meta.config = structuredClone(meta.config);
    mutate(meta);
    throwsWith(
      () => parseCheckpointMeta(JSON.stringify(meta), "run/best.json", "best"),
      "run/best.json",
      message,
    );
  }
  // `last` after an interrupted epoch has no validation MAE yet: allowed there.
  const last = { ...validMeta(), valMae: null };
  assert.ok(Number.isNaN(parseCheckpointMeta(JSON.stringify(last), "l.json", "last").valMae));
});

Deno.test("resume refuses another batch, seed, learning rate or data set, naming both values", () => {
  const saved: TrainSettings = {
    epochs: 3,
    batch: 16,
    lr: 0.002,
    seed: 0,
    timeLimitMinutes: 0,
    data: "data/a",
    dataFingerprint: "abc",
    kernels: "rows",
    exclude: null,
  };
  const { refused } = compareResumeSettings({ ...saved }, {
    ...saved,
    batch: 32,
    seed: 4,
    lr: 0.01,
    dataFingerprint: "def",
    data: "data/b",
  });
  assert.deepEqual(refused, [
    "--batch 32 (the run has 16)",
    "--seed 4 (the run has 0)",
    "--lr 0.01 (the run has 0.002)",
    "--data data/b, whose label CSV differs from the one the run was trained on (data/a)",
  ]);
  const more = compareResumeSettings({ ...saved }, {
    ...saved,
    epochs: 5,
    timeLimitMinutes: 30,
    data: "moved/a",
    kernels: "generic",
  }, { globalStep: 150, stepsPerEpoch: 50 });
  assert.deepEqual(more.refused, []);
  const rate = (epochs: number) => learningRate(0.002, 150, 50 * epochs).toPrecision(3);
  assert.deepEqual(more.notes, [
    "the data moved from data/a to moved/a (same label CSV)",
    "--epochs 5 (was 3): the cosine schedule now spans 5 epochs from the start: " +
    `at step 150 the learning rate goes from ${rate(3)} to ${rate(5)}`,
    "generic convolution kernels (the run had rows): the same arithmetic in another order, " +
    "so results differ from an uninterrupted run in the last bits",
    "--time-limit 30 (was 0): the budget counts the minutes already trained, " +
    "and the schedule follows the new one",
  ]);
});

// ---- fuzz ---------------------------------------------------------------------------------

/** Random bit flips, truncations and length-field edits of `bytes` (seeded). */
function mutate(bytes: Uint8Array, r: () => number, lengthFields: number[]): Uint8Array {
  const out = bytes.slice();
  const kind = Math.floor(r() * 3);
  if (kind === 0) {
    for (let k = 0; k < 1 + Math.floor(r() * 4); k++) {
      out[Math.floor(r() * out.length)] ^= 1 << Math.floor(r() * 8);
    }
    return out;
  }
  if (kind === 1) return out.slice(0, Math.floor(r() * out.length));
  const at = lengthFields[Math.floor(r() * lengthFields.length)];
  out[at + Math.floor(r() * 4)] = Math.floor(r() * 256);
  return out;
}

/** Recomputes every chunk's CRC, so mutations reach the decoder behind the CRC check. */
function fixCrcs(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at + 12 <= bytes.length;) {
    const len = v.getUint32(at);
    if (at + 12 + len > bytes.length) break;
    v.setUint32(at + 8 + len, crc32(bytes.subarray(at + 4, at + 8 + len)));
    at += 12 + len;
  }
  return bytes;
}

/** Offsets of a PNG's chunk length fields. */
function pngLengthFields(bytes: Uint8Array): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let at = 8; at + 12 <= bytes.length; at += 12 + v.getUint32(at)) out.push(at);
  return out;
}

/** Runs `load` on each mutation: it must return or throw a DataError naming `file`. */
async function fuzz(
  what: string,
  valid: Uint8Array,
  lengthFields: number[],
  load: (bytes: Uint8Array) => unknown,
  prepare: (b: Uint8Array) => Uint8Array = (b) => b,
  cases = 300,
) {
  const r = rng(7);
  let loaded = 0;
  const before = Deno.memoryUsage().rss;
  for (let i = 0; i < cases; i++) {
    const bytes = prepare(mutate(valid, r, lengthFields));
    try {
      await load(bytes);
      loaded++;
    } catch (err) {
      if (!(err instanceof DataError) || !err.message.includes("fuzz.")) {
        throw new Error(`${what} case ${i}: ${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  }
  assert.ok(Deno.memoryUsage().rss - before < 512 * 2 ** 20, `${what}: memory bounded`);
  return loaded;
}

/**
 * What the loader does with an image file: decode, naming the file when the decoder refuses
 * it. Only the decoders' own refusals (plain `Error`s with a message) are wrapped: a
 * TypeError or RangeError is a bug and fails the test.
 */
async function decodeNamed(bytes: Uint8Array, file: string) {
  try {
    return await decodeGray(bytes);
  } catch (err) {
    if ((err as Error).constructor !== Error || !(err as Error).message) throw err;
    throw new DataError((err as Error).message, file);
  }
}

Deno.test("fuzz: mutated PNG, safetensors, checkpoint JSON and CSV load or fail cleanly", async () => {
  const image = encodeGrayPng(
    Uint8Array.from({ length: 24 * 20 }, (_, i) => (i * 7) % 251),
    24,
    20,
    {
      filter: 4,
    },
  );
  await fuzz("PNG", image, pngLengthFields(image), (b) => decodeNamed(b, "fuzz.png"), fixCrcs);

  const st = validSafetensors();
  await fuzz("safetensors", st, [0], (b) => decodeSafetensors(b, "fuzz.safetensors"));

  const json = new TextEncoder().encode(JSON.stringify(validMeta()));
  await fuzz(
    "checkpoint JSON",
    json,
    [0],
    (b) => parseCheckpointMeta(new TextDecoder().decode(b), "fuzz.json", "best"),
  );

  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/boneage-training-dataset`);
  const csvText = "id,boneage,male\n1,120,True\n2,36.5,False\n3,200,M\n";
  const csvPath = `${dir}/fuzz.csv`;
  const loadCsv = async (b: Uint8Array) => {
    await Deno.writeFile(csvPath, b);
    return await readLabels({
      name: "train",
      csvPath,
      imageDirs: [`${dir}/boneage-training-dataset`],
      requireAge: true,
    });
  };
  await fuzz("CSV", new TextEncoder().encode(csvText), [0], loadCsv);
  await Deno.remove(dir, { recursive: true });
});
