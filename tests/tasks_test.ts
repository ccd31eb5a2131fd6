/**
 * The train / eval / predict tasks as a user runs them (subprocesses), on a small synthetic
 * set with the `tiny` config: outputs, resume equivalence, Ctrl-C, divergence, bad input.
 */
import assert from "node:assert/strict";
import { writeSynthDataset } from "../src/data/synth.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/app/safetensors.ts";
import { PROJECT_ROOT, runDeno, runTaskProcess, type TaskRun, taskRunArgs } from "./helpers.ts";

const PROJECT = PROJECT_ROOT;

type Run = TaskRun;

/** Runs a task with its deno.json permissions, plus write access to `writable`. */
const task = (name: string, args: string[], writable: string[]) =>
  runTaskProcess(name, args, writable);

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  return r;
}

let fixture: Promise<{ root: string; data: string; run: string }> | null = null;

/** One synthetic data set and one 2-epoch tiny run shared by the tests below. */
/** The tiny 2-epoch training run that the fixture and the resume test both make. */
const trainArgs = (data: string, out: string) => [
  "--data",
  data,
  "--config",
  "tiny",
  "--epochs",
  "2",
  "--batch",
  "16",
  "--out",
  out,
];

function trainedRun() {
  fixture ??= (async () => {
    const root = await Deno.makeTempDir({ prefix: "tasks_test_" });
    const data = `${root}/data`;
    await writeSynthDataset(data, { n: 96, seed: 3, size: 64 });
    const run = `${root}/run`;
    ok(
      await task("train", trainArgs(data, run), [root]),
      "train",
    );
    return { root, data, run };
  })();
  return fixture;
}

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...opts,
  name: "train writes checkpoints, split and one metrics line per epoch",
  fn: async () => {
    const { run } = await trainedRun();
    for (
      const f of [
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "last.optimizer.safetensors",
        "split.json",
      ]
    ) {
      assert.ok((await Deno.stat(`${run}/${f}`)).isFile, f);
    }
    const lines = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(lines.map((l) => l.epoch), [1, 2]);
    for (const l of lines) {
      assert.ok(l.val_mae > 0 && Number.isFinite(l.train_loss) && l.images_per_s > 0);
    }
    const weights = decodeSafetensors(await Deno.readFile(`${run}/best.safetensors`));
    assert.deepEqual(
      weights.tensors.get("trunk.0.weight")!.shape,
      [8, 1, 3, 3],
      "PyTorch conv layout",
    );
  },
});

Deno.test({
  ...opts,
  name: "a run stopped mid-epoch and resumed reaches the same weights as an uninterrupted run",
  fn: async () => {
    const { root, data, run } = await trainedRun();
    const resumed = `${root}/resumed`;
    // The same arguments as the fixture's uninterrupted run, into another folder.
    const common = trainArgs(data, resumed);
    // A time limit of a few milliseconds stops the run right after its first step.
    const first = ok(
      await task("train", [...common, "--time-limit", "0.00001"], [root]),
      "first step",
    );
    assert.match(first.stdout, /used its time limit/);
    const meta = JSON.parse(await Deno.readTextFile(`${resumed}/last.json`));
    assert.deepEqual([meta.epoch, meta.stepInEpoch, meta.globalStep], [0, 1, 1]);
    // A time-limited run validates its last, partial epoch and keeps it as `best`.
    const metrics = (await Deno.readTextFile(`${resumed}/metrics.jsonl`)).trim().split("\n");
    assert.equal(metrics.length, 1);
    const partial = JSON.parse(metrics[0]);
    assert.equal(partial.partial, true);
    assert.ok(partial.val_mae > 0 && Number.isFinite(partial.val_mae), "validated");
    assert.equal(
      JSON.parse(await Deno.readTextFile(`${resumed}/best.json`)).valMae,
      partial.val_mae,
    );
    // A crash can leave a save's temporary file, and metrics.jsonl behind the checkpoint.
    await Deno.writeTextFile(`${resumed}/last.json.tmp-99999`, "{");
    await Deno.writeTextFile(`${resumed}/metrics.jsonl`, "");
    const again = ok(await task("train", [...common, "--resume"], [root]), "resume");
    assert.match(again.stdout, /removed 1 unfinished files of a crashed save/);
    assert.ok(![...Deno.readDirSync(resumed)].some((f) => f.name.includes(".tmp-")));
    const healed = (await Deno.readTextFile(`${resumed}/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(healed.map((m) => [m.epoch, m.partial ?? false]), [
      [1, true],
      [1, false],
      [2, false],
    ]);
    const a = decodeSafetensors(await Deno.readFile(`${run}/last.safetensors`)).tensors;
    const b = decodeSafetensors(await Deno.readFile(`${resumed}/last.safetensors`)).tensors;
    assert.equal(b.size, a.size);
    for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, name);
  },
});

Deno.test({
  ...opts,
  name: "eval prints JSON and writes predictions.csv and report.html",
  fn: async () => {
    const { data, run, root } = await trainedRun();
    const out = `${root}/eval`;
    const r = ok(
      await task("eval", ["--checkpoint", run, "--data", data, "--out", out, "--json"], [root]),
      "eval",
    );
    const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(summary.n, 96);
    for (const k of ["mae", "mae_male", "mae_female"]) {
      assert.ok(summary[k] > 0 && summary[k] < 240, k);
    }
    const csv = (await Deno.readTextFile(`${out}/predictions.csv`)).trim().split("\n");
    assert.equal(csv[0], "id,sex,true,predicted,error");
    assert.equal(csv.length, 97);
    const mae = csv.slice(1).reduce((s, l) => s + Math.abs(Number(l.split(",")[4])), 0) / 96;
    assert.ok(Math.abs(mae - summary.mae) < 0.01, "the CSV's errors give the printed MAE");
    const html = await Deno.readTextFile(`${out}/report.html`);
    assert.ok(
      html.includes("new Chart(") && html.includes("Bland") && !html.includes("<script src="),
    );
    const val = ok(
      await task("eval", ["--checkpoint", run, "--split", "val", "--json", "--out", out], [root]),
      "eval val",
    );
    const best = JSON.parse(await Deno.readTextFile(`${run}/best.json`));
    assert.ok(
      Math.abs(JSON.parse(val.stdout.trim().split("\n").at(-1)!).mae - best.valMae) < 0.05,
      "same val MAE as training",
    );
  },
});

Deno.test({
  ...opts,
  name: "predict prints months, years, uncertainty, age difference and a heatmap",
  fn: async () => {
    const { data, run, root } = await trainedRun();
    const image = `${data}/boneage-training-dataset/${
      (await Deno.readTextFile(`${data}/boneage-training-dataset.csv`)).split("\n")[1].split(",")[0]
    }.png`;
    const heat = `${root}/heat.png`;
    const r = ok(
      await task("predict", [
        image,
        "--sex",
        "F",
        "--age",
        "100",
        "--checkpoint",
        run,
        "--heatmap",
        heat,
        "--json",
      ], [root]),
      "predict",
    );
    const result = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.ok(
      result.bone_age_months > 0 &&
        Math.abs(result.bone_age_years - result.bone_age_months / 12) < 0.01,
    );
    assert.ok(Math.abs(result.difference_months - (result.bone_age_months - 100)) < 0.11);
    assert.ok(result.uncertainty_months > 0);
    assert.match(r.stderr, /not a medical device/);
    const png = await Deno.readFile(heat);
    assert.deepEqual([...png.subarray(1, 4)], [80, 78, 71], "a PNG");
    const text = ok(
      await task("predict", [image, "--sex", "M", "--checkpoint", run], [root]),
      "predict text",
    );
    assert.match(
      text.stdout,
      /Bone age: [\d.]+ months \(\d+ years? \d+ months?\), ± [\d.]+ months/,
    );
  },
});

const FULLRES =
  new URL("../../shared/data/rsna-fullres-sample/boneage-test-dataset/", import.meta.url).pathname;
const hasFullres = await Deno.stat(FULLRES).then(() => true, () => false);

Deno.test({
  ...opts,
  name: "predict reads full-resolution real radiographs, the palette PNG included",
  ignore: !hasFullres,
  fn: async () => {
    const { run, root } = await trainedRun();
    for (const id of ["4360", "4533"]) {
      const r = ok(
        await task(
          "predict",
          [`${FULLRES}${id}.png`, "--sex", "F", "--checkpoint", run, "--json"],
          [root],
        ),
        id,
      );
      const months = JSON.parse(r.stdout.trim().split("\n").at(-1)!).bone_age_months;
      assert.ok(months > 0 && months < 300, `${id}: ${months}`);
    }
  },
});

Deno.test({
  ...opts,
  name: "bad input gets a clear error",
  fn: async () => {
    const { data, run, root } = await trainedRun();
    const cases: [string, string[], RegExp][] = [
      [
        "train",
        ["--data", data, "--config", "huge", "--out", `${root}/x`],
        /unknown config "huge": choose one of tiny, small, paper/,
      ],
      [
        "train",
        ["--data", data, "--config", "tiny", "--epochs", "0", "--out", `${root}/x`],
        /--epochs must be an integer >= 1/,
      ],
      ["train", ["--data", `${root}/nowhere`, "--config", "tiny", "--out", `${root}/x`], /nowhere/],
      [
        "eval",
        ["--checkpoint", `${root}/missing-run`, "--data", data],
        /no checkpoint: .*missing-run\/best\.json does not exist/,
      ],
      [
        "predict",
        [`${run}/split.json`, "--sex", "F", "--checkpoint", run],
        /split\.json is not a PNG or JPEG/,
      ],
      [
        "predict",
        [`${data}/boneage-training-dataset.csv`, "--sex", "X", "--checkpoint", run],
        /--sex must be M or F, got "X"/,
      ],
      ["predict", [
        `${data}/boneage-training-dataset.csv`,
        "--sex",
        "F",
        "--age",
        "-5",
        "--checkpoint",
        run,
      ], /--age must be a number between 0 and 300/],
      [
        "predict",
        [`${root}/none.png`, "--sex", "F", "--checkpoint", run],
        /cannot read .*none\.png/,
      ],
    ];
    for (const [name, args, pattern] of cases) {
      const r = await task(name, args, [root]);
      assert.notEqual(r.code, 0, `${name} ${args.join(" ")} should fail`);
      assert.match(r.stderr, pattern);
    }
  },
});

Deno.test({
  ...opts,
  name: "checkpoints of another configuration, shapes or save are refused with a clear error",
  fn: async () => {
    const { root, run, data } = await trainedRun();
    const other = `${root}/mismatch`;
    await Deno.mkdir(other, { recursive: true });
    const meta = JSON.parse(await Deno.readTextFile(`${run}/best.json`));
    // A config that is not this version's "tiny".
    meta.config.trunk[0].channels = 12;
    await Deno.writeTextFile(`${other}/best.json`, JSON.stringify(meta));
    await Deno.copyFile(`${run}/best.safetensors`, `${other}/best.safetensors`);
    let r = await task("eval", ["--checkpoint", other, "--data", data], [root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /best\.json: config differs from the "tiny" configuration/);
    // The right config, weights of other shapes.
    await Deno.copyFile(`${run}/best.json`, `${other}/best.json`);
    const { tensors, metadata } = decodeSafetensors(await Deno.readFile(`${run}/best.safetensors`));
    tensors.set("trunk.0.weight", { shape: [12, 1, 3, 3], data: new Float32Array(108).fill(0.1) });
    await Deno.writeFile(`${other}/best.safetensors`, encodeSafetensors(tensors, metadata));
    r = await task("eval", ["--checkpoint", other, "--data", data], [root]);
    assert.match(
      r.stderr,
      /does not match the "tiny" model: trunk\.0\.weight is \[12,1,3,3\] in the file but \[8,1,3,3\]/,
    );
    // Weights of one save beside the JSON of another.
    tensors.set(
      "trunk.0.weight",
      decodeSafetensors(await Deno.readFile(`${run}/best.safetensors`))
        .tensors.get("trunk.0.weight")!,
    );
    await Deno.writeFile(
      `${other}/best.safetensors`,
      encodeSafetensors(tensors, { ...metadata, step: "1" }),
    );
    r = await task("eval", ["--checkpoint", other, "--data", data], [root]);
    assert.match(r.stderr, /best\.safetensors: holds step 1 but .*best\.json records step \d+/);
    // Weights that make every estimate NaN: an error, never "NaN months".
    tensors.set("head.2.bias", {
      ...tensors.get("head.2.bias")!,
      data: tensors.get("head.2.bias")!.data.map(() => NaN),
    });
    await Deno.writeFile(`${other}/best.safetensors`, encodeSafetensors(tensors, metadata));
    const image = `${data}/boneage-training-dataset/1.png`;
    r = await task("predict", [image, "--sex", "F", "--age", "100", "--checkpoint", other], [root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /estimate for .*1\.png is NaN months/);
    assert.doesNotMatch(r.stdout, /NaN/);
  },
});

Deno.test({
  ...opts,
  name: "resume with another batch is refused, naming both values",
  fn: async () => {
    const { root, run, data } = await trainedRun();
    const copy = `${root}/other-batch`;
    await Deno.mkdir(copy);
    for await (const f of Deno.readDir(run)) {
      if (f.isFile) await Deno.copyFile(`${run}/${f.name}`, `${copy}/${f.name}`);
    }
    const args = trainArgs(data, copy).map((a) => a === "16" ? "8" : a);
    const r = await task("train", [...args, "--epochs", "3", "--resume"], [root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--batch 8 \(the run has 16\)/);
  },
});

Deno.test({
  ...opts,
  name: "a diverging run stops with an error and leaves the last good checkpoint",
  fn: async () => {
    const { root, data } = await trainedRun();
    const dir = `${root}/diverge`;
    const common = ["--data", data, "--config", "tiny", "--batch", "16", "--out", dir];
    ok(await task("train", [...common, "--epochs", "1"], [root]), "first epoch");
    const before = await Deno.readFile(`${dir}/last.safetensors`);
    // --resume refuses a changed --lr, so the run's own record is given the huge one.
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/last.json`));
    meta.settings.lr = 1e38;
    await Deno.writeTextFile(`${dir}/last.json`, JSON.stringify(meta));
    const r = await task("train", [...common, "--epochs", "3", "--resume", "--lr", "1e38"], [root]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /training diverged: the loss is (NaN|Infinity)/);
    assert.deepEqual(
      await Deno.readFile(`${dir}/last.safetensors`),
      before,
      "last checkpoint untouched",
    );
  },
});

Deno.test({
  ...opts,
  name: "Ctrl-C saves the last checkpoint before exiting",
  fn: async () => {
    const { root, data } = await trainedRun();
    const dir = `${root}/interrupted`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...taskRunArgs("train", [root]),
        "--data",
        data,
        "--config",
        "tiny",
        "--batch",
        "8",
        "--epochs",
        "50",
        "--out",
        dir,
      ],
      cwd: PROJECT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("epoch 1:")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGINT");
    const rest = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest.push(value);
    }
    const status = await child.status;
    await child.stderr.cancel();
    assert.equal(status.code, 0, seen + rest.join(""));
    assert.match(rest.join(""), /interrupted/);
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/last.json`));
    assert.ok(meta.epoch >= 1 && meta.epoch < 50);
  },
});

Deno.test({
  ...opts,
  name: "a write outside runs/ and data/ is refused with the exact deno run line that grants it",
  fn: async () => {
    const { data, run, root } = await trainedRun();
    const image = `${data}/boneage-training-dataset/1.png`;
    const heat = `${root}/granted-heat.png`;
    const args = [image, "--sex", "F", "--checkpoint", run, "--heatmap", heat];
    const refused = await runTaskProcess("predict", args);
    assert.notEqual(refused.code, 0);
    const line = refused.stderr.split("\n").map((l) => l.trim()).find((l) =>
      l.startsWith("deno run ")
    );
    assert.ok(line, refused.stderr);
    assert.ok(line.includes(`--allow-write=runs,data,${heat} `), line);
    assert.ok(line.endsWith(args.join(" ")), line);
    // The line does what it says.
    const granted = await runDeno(line.split(" ").slice(1));
    assert.equal(granted.code, 0, granted.stderr);
    assert.ok((await Deno.stat(heat)).isFile);
  },
});
