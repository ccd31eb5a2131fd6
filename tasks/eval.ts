/**
 * `deno task eval`: evaluates a trained checkpoint on labeled radiographs.
 *
 *     deno task eval --checkpoint RUN_DIR [--data DIR] [--split val] [--out DIR] [--tta N] [--json]
 *
 * Without `--split`, every labeled row of DIR is evaluated; with `--split val`, the run's own
 * validation rows (DIR defaults to the run's data folder). Writes `predictions.csv` and a
 * self-contained `report.html` to `--out` (default `RUN_DIR/eval`).
 *
 * @module
 */
import { loadImageSet } from "../src/data/load.ts";
import { readSplit } from "../src/data/split.ts";
import { Engine } from "../src/engine/engine.ts";
import {
  type PredictionRow,
  predictionsCsv,
  renderReport,
  summarize,
} from "../src/app/eval_report.ts";
import { loadCheckpoint, readMetrics } from "../src/app/checkpoint.ts";
import { predictMonths } from "../src/app/predict.ts";
import { loadRecipe, prepareImageSet } from "../src/app/prepare.ts";
import {
  fail,
  numberOption,
  parseCommandLine,
  runTask,
  SHIPPED_CHECKPOINT,
  type TaskHelp,
} from "./cli.ts";

/** `deno task eval --help`. */
export const HELP: TaskHelp = {
  usage:
    "deno task eval [--checkpoint RUN_DIR] [--data DIR] [--split val] [--out DIR] [--tta N] [--json]",
  about:
    `Evaluates RUN_DIR's best checkpoint on every labeled radiograph of DIR, or with --split val
on the run's own validation rows: MAE overall, by sex and by age band, beside the mean
predictor's. Writes predictions.csv and report.html to --out (default RUN_DIR/eval). --tta N
averages N mildly transformed copies; --json prints one JSON object as the last line.
--checkpoint defaults to the shipped weights/ (its --out then defaults to runs/weights-eval).`,
  examples: [
    "deno task eval --checkpoint runs/example --split val",
    "deno task eval --checkpoint runs/example --data data/synth --json",
    "deno task eval --checkpoint runs/example-registered --split val",
  ],
};

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(
    args,
    {
      checkpoint: { type: "string", default: SHIPPED_CHECKPOINT },
      data: { type: "string" },
      split: { type: "string" },
      out: { type: "string" },
      tta: { type: "string", default: "0" },
      json: { type: "boolean", default: false },
    },
    HELP,
  );
  if (values.split !== undefined && values.split !== "val") {
    fail(`--split must be "val", got "${values.split}"`);
  }
  const tta = numberOption("tta", values.tta!, { integer: true, min: 0, max: 16 });
  const runDir = values.checkpoint!;
  const say = (line: string) => values.json ? console.error(line) : console.log(line);

  const engine = await Engine.create();
  const { model, meta } = await loadCheckpoint(engine, runDir, "best");
  const dataDir = values.data ?? (values.split ? String(meta.settings.data ?? "") : "");
  if (!dataDir) fail(`--data is required (or --split val to use the run's own validation rows)`);
  const prepared = await loadRecipe(engine, meta.recipe, runDir);
  const loaded = await loadImageSet(dataDir, {
    size: meta.config.inputHeight,
    fit: meta.recipe.fit,
    quiet: values.json,
  });
  const { fingerprint } = loaded;
  const prep = await prepareImageSet(loaded.set, prepared);
  const set = prep.set;
  let indices: number[];
  if (values.split === "val") {
    const trained = meta.settings.dataFingerprint;
    if (trained !== undefined && trained !== fingerprint) {
      fail(
        `${dataDir}: its label CSV is not the one ${runDir} was trained on, so the run's ` +
          `validation rows do not apply; evaluate it as a whole with --data ${dataDir}`,
      );
    }
    const split = await readSplit(runDir, set.ids);
    if (split.missing?.length) {
      fail(`${runDir}/split.json names ${split.missing.length} ids absent from ${dataDir}`);
    }
    indices = split.val;
  } else {
    indices = [...set.boneage.keys()].filter((i) => Number.isFinite(set.boneage[i]));
    const unlabeled = set.ids.length - indices.length;
    if (unlabeled) say(`${unlabeled} rows of ${dataDir} have no bone age and are not evaluated`);
  }
  const refused = new Map(prep.refused.map((r) => [r.row, r.reason]));
  const noHand = indices.filter((i) => refused.has(i));
  if (noHand.length) {
    say(
      `no hand found in ${noHand.length} of the ${indices.length} radiographs; they are not ` +
        `scored: ${noHand.slice(0, 5).map((i) => `${set.ids[i]} (${refused.get(i)})`).join(", ")}` +
        (noHand.length > 5 ? ", ..." : ""),
    );
    indices = indices.filter((i) => !refused.has(i));
  }
  if (indices.length === 0) fail(`${dataDir}: no labeled rows to evaluate`);
  const right = indices.filter((i) => prep.hands?.[i].mirrored);
  if (right.length) {
    say(
      `${right.length} of the ${indices.length} radiographs show a right hand, mirrored to a ` +
        `left one: ${right.slice(0, 5).map((i) => set.ids[i]).join(", ")}` +
        (right.length > 5 ? ", ..." : ""),
    );
  }

  const predicted = await predictMonths(model, set, indices, meta.normalization, { tta });
  const rows: PredictionRow[] = indices.map((i, k) => ({
    id: set.ids[i],
    male: set.male[i],
    truth: set.boneage[i],
    predicted: predicted[k],
  }));
  const summary = summarize(rows, meta.normalization.ageMean);
  // weights/ is committed and the task may not write there: its reports go under runs/.
  const outDir = values.out ??
    (runDir === SHIPPED_CHECKPOINT ? "runs/weights-eval" : `${runDir}/eval`);
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.writeTextFile(`${outDir}/predictions.csv`, predictionsCsv(rows));
  const title =
    `Bone-age evaluation: ${meta.config.name} model (epoch ${meta.epoch}) on ${dataDir}` +
    (values.split ? " (validation split)" : "");
  await Deno.writeTextFile(
    `${outDir}/report.html`,
    await renderReport({ title, summary, rows, metrics: await readMetrics(runDir) }),
  );

  say(`${title}${tta ? `, TTA x${tta}` : ""}`);
  say(
    `MAE ${summary.mae.toFixed(2)} months over ${summary.n} radiographs ` +
      `(boys ${summary.mae_male.toFixed(2)}, girls ${summary.mae_female.toFixed(2)}, mean error ${
        summary.bias.toFixed(2)
      })`,
  );
  say(
    `the mean predictor (${meta.normalization.ageMean.toFixed(1)} months, the training mean, ` +
      `for every radiograph) scores ${summary.mae_mean_predictor.toFixed(2)}`,
  );
  for (const [band, g] of Object.entries(summary.by_age)) {
    say(`  ${band.padEnd(7)} n=${String(g.n).padStart(5)}  MAE ${g.n ? g.mae.toFixed(2) : "-"}`);
  }
  say(`wrote ${outDir}/predictions.csv and ${outDir}/report.html`);
  if (values.json) console.log(JSON.stringify({ ...summary, no_hand: noHand.length }));
  engine.destroy();
}

if (import.meta.main) await runTask(main);
