/**
 * Data folder layouts, label parsing and every bad-input case: each names file and line/id.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { findDataset, pickSplit, readLabels } from "../src/data/layout.ts";
import { loadImageSet } from "../src/data/load.ts";
import { encodeGrayPng } from "../src/data/png.ts";
import { DataError, formatReport } from "../src/data/report.ts";

const SHARED = new URL("../../shared/data/", import.meta.url).pathname;
const hasShared = (() => {
  try {
    return Deno.statSync(join(SHARED, "rsna-100px")).isDirectory &&
      Deno.statSync(join(SHARED, "rsna-fullres-sample")).isDirectory;
  } catch {
    return false;
  }
})();

/** A small valid gray PNG whose pixels encode `seed`. */
function png(seed: number, w = 12, h = 10): Uint8Array {
  return encodeGrayPng(Array.from({ length: w * h }, (_, i) => (i * 7 + seed * 31) & 255), w, h);
}

/** Writes `files` (relative path -> text or bytes) into a fresh temp folder. */
async function folder(files: Record<string, string | Uint8Array>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "data_layout_" });
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    if (typeof content === "string") await Deno.writeTextFile(path, content);
    else await Deno.writeFile(path, content);
  }
  return dir;
}

/** Awaits a rejection of class `cls` and returns the error for message checks. */
async function rejects(
  fn: () => Promise<unknown>,
  cls: new (...a: never[]) => Error,
  has?: string,
) {
  try {
    await fn();
  } catch (e) {
    assert(e instanceof cls, `expected ${cls.name}, got ${e}`);
    if (has !== undefined) assert((e as Error).message.includes(has), (e as Error).message);
    return e as Error;
  }
  throw new Error(`expected a ${cls.name}`);
}

const opts = { size: 16, cacheDir: false as const, quiet: true, workers: 0 };

Deno.test("Kaggle training layout, also with the nested image folder", async () => {
  for (
    const sub of ["boneage-training-dataset", "boneage-training-dataset/boneage-training-dataset"]
  ) {
    const dir = await folder({
      "boneage-training-dataset.csv": "id,boneage,male\n1,30,True\n2,150.5,False\n",
      [`${sub}/1.png`]: png(1),
      [`${sub}/2.png`]: png(2),
    });
    const layout = await findDataset(dir);
    assert.deepEqual(layout.splits.map((s) => s.name), ["train"]);
    const { rows, report } = await readLabels(pickSplit(layout));
    assert.deepEqual(rows.map((r) => [r.id, r.boneage, r.male, r.line]), [["1", 30, 1, 2], [
      "2",
      150.5,
      0,
      3,
    ]]);
    assert.deepEqual(rows[1].imagePath, join(dir, sub, "2.png"));
    assert.deepEqual(report.skipped.length, 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("test format (Case ID,Sex) takes ages from boneage-test-labels.csv", async () => {
  const dir = await folder({
    "boneage-test-dataset.csv": "Case ID,Sex\n10,M\n11,F\n12,F\n",
    "boneage-test-labels.csv": "id,boneage,male\n10,100.5,True\n11,60,False\n",
    "boneage-test-dataset/10.png": png(10),
    "boneage-test-dataset/11.png": png(11),
    "boneage-test-dataset/12.png": png(12),
  });
  const layout = await findDataset(dir);
  assert.deepEqual(layout.splits.map((s) => s.name), ["test"]);
  const { rows, report } = await readLabels(layout.splits[0]);
  assert.deepEqual(rows.map((r) => r.male), [1, 0, 0]);
  assert.deepEqual(rows[0].boneage, 100.5);
  assert.deepEqual(rows[1].boneage, 60);
  assert(Number.isNaN(rows[2].boneage), "an id without reference label keeps NaN");
  assert.deepEqual(report.skipped.length, 0);
  assert.match(report.warnings.join("\n"), /1 ids have no reference label/);
  const { set } = await loadImageSet(dir, { ...opts, split: "test" });
  assert.deepEqual(set.ids, ["10", "11", "12"]);
  assert(Number.isNaN(set.boneage[2]));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("validation CSV with the original RSNA headers, images in two folders", async () => {
  const dir = await folder({
    "Validation Dataset.csv": "Image ID,male,Bone Age (months)\n1386,FALSE,30\n1392,TRUE,162\n",
    "boneage-validation-dataset-1/1386.png": png(1),
    "boneage-validation-dataset-2/1392.png": png(2),
  });
  const layout = await findDataset(dir);
  assert.deepEqual(layout.splits.map((s) => s.name), ["validation"]);
  const { rows } = await readLabels(pickSplit(layout));
  assert.deepEqual(rows.map((r) => [r.id, r.male, r.boneage]), [["1386", 0, 30], ["1392", 1, 162]]);
  assert(rows[1].imagePath.endsWith(join("boneage-validation-dataset-2", "1392.png")));
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "both shared folders are found and labelled with no special-casing",
  ignore: !hasShared,
  fn: async () => {
    const small = await findDataset(join(SHARED, "rsna-100px"));
    assert.deepEqual(small.splits.map((s) => s.name), ["train"]);
    const t = await readLabels(pickSplit(small));
    assert.deepEqual(t.rows.length, 11611);
    assert.deepEqual(formatReport(t.report), "used 11,611, skipped 0");
    const males = t.rows.filter((r) => r.male).length / t.rows.length;
    assert(males > 0.5 && males < 0.58, `male share ${males}`);
    assert(t.rows.every((r) => r.boneage >= 1 && r.boneage <= 228));

    const full = await findDataset(join(SHARED, "rsna-fullres-sample"));
    assert.deepEqual(full.splits.map((s) => s.name).sort(), ["test", "train"]);
    const train = await readLabels(pickSplit(full, "train"));
    assert.deepEqual(train.rows.length, 40);
    const test = await readLabels(pickSplit(full, "test"));
    assert.deepEqual(test.rows.length, 20);
    assert(test.rows.every((r) => Number.isFinite(r.boneage)), "every test id has a reference age");
    assert.deepEqual(test.rows.find((r) => r.id === "4360")?.boneage, 168.93);
  },
});

Deno.test("missing data folder and a folder without CSV are errors naming the path", async () => {
  const gone = join(await Deno.makeTempDir(), "nope");
  const e1 = await rejects(() => loadImageSet(gone, opts), DataError);
  assert.match(e1.message, /nope: data folder not found/);
  const empty = await folder({ "readme.txt": "x" });
  const e2 = await rejects(() => findDataset(empty), DataError);
  assert.match(e2.message, /no label CSV found/);
  assert(e2.message.startsWith(empty));
});

Deno.test("CSV with a missing column is an error naming file, line and header", async () => {
  const dir = await folder({ "boneage-training-dataset.csv": "id,male\n1,True\n" });
  const e = await rejects(() => loadImageSet(dir, opts), DataError);
  assert.match(e.message, /boneage-training-dataset\.csv:1: missing column bone age/);
  assert.match(e.message, /header is "id,male"/);
  const dir2 = await folder({ "boneage-training-dataset.csv": 'id,boneage,male\n"1,30,True\n' });
  const e2 = await rejects(() => loadImageSet(dir2, opts), DataError);
  assert.match(e2.message, /boneage-training-dataset\.csv.*malformed CSV/);
});

Deno.test("bad rows are skipped, counted and reported with line, id and reason", async () => {
  const dir = await folder({
    "boneage-training-dataset.csv": [
      "id,boneage,male",
      "1,30,True", // line 2: good
      "2,abc,True", // 3: non-numeric age
      "3,-5,False", // 4: negative age
      "4,40,X", // 5: unknown sex
      "1,31,True", // 6: duplicate of line 2
      "5,50,False", // 7: image missing
      ",60,True", // 8: no id
      "6,70,F", // 9: good
    ].join("\n"),
    "boneage-training-dataset/1.png": png(1),
    "boneage-training-dataset/2.png": png(2),
    "boneage-training-dataset/3.png": png(3),
    "boneage-training-dataset/4.png": png(4),
    "boneage-training-dataset/6.png": png(6),
  });
  const { set, report } = await loadImageSet(dir, opts);
  assert.deepEqual(set.ids, ["1", "6"]);
  assert.deepEqual(Array.from(set.male), [1, 0]);
  const got = report.skipped.map((s) => `${s.line} ${s.id} ${s.reason}`);
  assert.deepEqual(got, [
    "3 2 bad age",
    "4 3 bad age",
    "5 4 bad sex",
    "6 1 duplicate id",
    "7 5 missing image",
    "8  missing id",
  ]);
  assert.match(report.skipped[0].detail, /"abc"/);
  assert.match(report.skipped[2].detail, /unknown sex value "X"/);
  assert.match(report.skipped[3].detail, /line 2/);
  assert(report.skipped.every((s) => s.file.endsWith("boneage-training-dataset.csv")));
  assert.deepEqual(
    formatReport(report),
    "used 2, skipped 6: 2 bad age, 1 bad sex, 1 duplicate id, 1 missing image, 1 missing id",
  );
  const e = await rejects(() => loadImageSet(dir, { ...opts, strict: true }), DataError);
  assert.match(e.message, /strict mode: rows skipped \(used 2, skipped 6/);
  assert.match(e.message, /:5: bad sex \(id 4\)/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("corrupt and truncated PNGs are skipped as corrupt PNG, naming the image", async () => {
  const good = encodeGrayPng(
    Array.from({ length: 64 * 64 }, (_, i) => (i * 2654435761) >>> 24),
    64,
    64,
  );
  const dir = await folder({
    "boneage-training-dataset.csv":
      "id,boneage,male\n1,30,True\n2,40,False\n3,50,True\n4,60,True\n",
    "boneage-training-dataset/1.png": good,
    "boneage-training-dataset/2.png": good.subarray(0, good.length >> 1),
    "boneage-training-dataset/3.png": new TextEncoder().encode("not an image at all"),
    "boneage-training-dataset/4.png": new Uint8Array(),
  });
  const { set, report } = await loadImageSet(dir, opts);
  assert.deepEqual(set.ids, ["1"]);
  assert.deepEqual(report.skipped.map((s) => [s.id, s.line, s.reason]), [
    ["2", 3, "corrupt PNG"],
    ["3", 4, "corrupt PNG"],
    ["4", 5, "corrupt PNG"],
  ]);
  assert(report.skipped[0].file.endsWith(join("boneage-training-dataset", "2.png")));
  assert.match(report.skipped[2].detail, /empty file/);
  assert.deepEqual(formatReport(report), "used 1, skipped 3: 3 corrupt PNG");
  await rejects(() => loadImageSet(dir, { ...opts, strict: true }), DataError);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("an empty data set is an error, also when every row was skipped", async () => {
  const dir = await folder({ "boneage-training-dataset.csv": "id,boneage,male\n" });
  const e = await rejects(() => loadImageSet(dir, opts), DataError);
  assert.match(e.message, /boneage-training-dataset\.csv: empty data set/);
  const dir2 = await folder({ "boneage-training-dataset.csv": "id,boneage,male\n1,30,True\n" });
  const e2 = await rejects(() => loadImageSet(dir2, opts), DataError);
  assert.match(e2.message, /empty data set.*1 missing image/s);
  const dir3 = await folder({ "boneage-training-dataset.csv": "" });
  await rejects(() => loadImageSet(dir3, opts), DataError, "empty CSV");
});

Deno.test("pickSplit: named split, train by default, error listing splits otherwise", async () => {
  const dir = await folder({
    "boneage-test-dataset.csv": "Case ID,Sex\n",
    "Validation Dataset.csv": "Image ID,male,Bone Age (months)\n",
  });
  const layout = await findDataset(dir);
  assert.deepEqual(pickSplit(layout, "test").name, "test");
  const e = (() => {
    try {
      pickSplit(layout);
    } catch (err) {
      return err as Error;
    }
  })();
  assert.match(e?.message ?? "", /pick one of: test, validation/);
});
