/**
 * `deno task train`: trains a bone-age model on the GPU engine.
 *
 *     deno task train [--data DIR] [--config small] [--epochs 10] [--batch 32] [--lr 0.002]
 *                     [--seed 0] [--out runs/small] [--resume] [--time-limit MINUTES] [--strict]
 *
 * With no `--data` it uses `data/`, generating a synthetic set there first when it holds none.
 * `--time-limit MINUTES` is a budget: the cosine decay follows the clock as well as the steps,
 * and training stops in time to validate and save, so `--epochs` becomes an upper bound. A run
 * with a time limit depends on the machine's speed; one without is reproducible step for step.
 *
 * @module
 */
import { loadImageSet } from "../src/data/load.ts";
import { findDataset, readIdList } from "../src/data/layout.ts";
import { subsetImageSet } from "../src/data/dataset.ts";
import { readSplit, splitDataset, writeSplit } from "../src/data/split.ts";
import { pixelStats } from "../src/data/stats.ts";
import { writeSynthDataset } from "../src/data/synth.ts";
import { createProgress } from "../src/data/progress.ts";
import { Engine } from "../src/engine/engine.ts";
import { getConfig } from "../src/model/configs.ts";
import { formatDuration } from "../src/app/schedule.ts";
import { readCheckpointMeta, RUN_FILES } from "../src/app/checkpoint.ts";
import { trainModel } from "../src/app/training.ts";
import { INTENSITIES, type Intensity } from "../src/data/intensity.ts";
import { copyKeypointCheckpoint } from "../src/app/keypoints.ts";
import { loadRecipe, prepareImageSet } from "../src/app/prepare.ts";
import { LEGACY_RECIPE, registeredRecipe } from "../src/data/recipe.ts";
import {
  fail,
  kernelsOption,
  numberOption,
  parseCommandLine,
  runTask,
  statusLine,
  type TaskHelp,
} from "./cli.ts";

/** `deno task train --help`. */
export const HELP: TaskHelp = {
  usage: `deno task train [--data DIR] [--config tiny|small] [--epochs N] [--batch B] [--lr X]
                       [--seed S] [--out RUN_DIR] [--resume] [--time-limit MINUTES] [--strict]
                       [--kernels auto|rows|generic] [--exclude CSV]
                       [--register KEYPOINT_DIR [--intensity none|stretch|equalize]]`,
  about: `Trains a bone-age model on a Kaggle-layout folder (boneage-training-dataset.csv and
boneage-training-dataset/<id>.png) and writes best/last checkpoints, split.json and
metrics.jsonl to RUN_DIR (default runs/CONFIG). Without --data it uses data/, generating
2,000 synthetic radiographs there first when it holds no data set. For the real RSNA 2017
data, download "RSNA Pediatric Bone Age Challenge (2017)" from Stanford AIMI or Kaggle's
"RSNA Bone Age", unpack it and pass its folder: deno task train --data ~/rsna-bone-age.
Defaults: --config small --epochs 10 --batch 32 --lr 0.002 --seed 0. --time-limit MINUTES
is a budget (the learning rate anneals by then); --resume continues RUN_DIR's last checkpoint.
--kernels picks the convolution kernels (default auto: rows on a CPU adapter, generic on a GPU).
--exclude CSV keeps the ids of CSV's id column out of training and validation (for images
you will test on, e.g. a folder of full-size copies of some training radiographs).
--register KEYPOINT_DIR (a keypoint checkpoint of deno task keypoints) registers every hand
to one upright pose and size before the model sees it; --intensity stretch (the default
with --register) then maps the background to black and the hand's bright bone to white,
equalize the hand's histogram, none keeps the pixels; the run copies the keypoint checkpoint into
RUN_DIR/keypoints and records this recipe, so eval, predict and serve prepare images alike.`,
  examples: [
    "deno task train --data data/synth --config tiny --epochs 2 --out runs/example",
    "deno task train --data data/synth --config tiny --epochs 3 --out runs/example --resume",
    "deno task train --data data/synth --config tiny --epochs 1 --register runs/example-keypoints --out runs/example-registered",
  ],
};

const DEFAULT_DATA = "data";
const SYNTH_COUNT = 2000;
const REAL_DATA_HINT =
  `To train on the real RSNA 2017 Pediatric Bone Age data (12,611 hand radiographs): download it
from Stanford AIMI ("RSNA Pediatric Bone Age Challenge (2017)") or Kaggle ("RSNA Bone Age"),
unpack it so that one folder holds boneage-training-dataset.csv and boneage-training-dataset/,
and pass that folder: deno task train --data ~/rsna-bone-age --out runs/rsna-small`;

async function hasDataset(dir: string): Promise<boolean> {
  try {
    await findDataset(dir);
    return true;
  } catch {
    return false;
  }
}

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(
    args,
    {
      data: { type: "string" },
      config: { type: "string", default: "small" },
      epochs: { type: "string", default: "10" },
      batch: { type: "string", default: "32" },
      lr: { type: "string", default: "0.002" },
      seed: { type: "string", default: "0" },
      out: { type: "string" },
      resume: { type: "boolean", default: false },
      "time-limit": { type: "string", default: "0" },
      strict: { type: "boolean", default: false },
      kernels: { type: "string", default: "auto" },
      exclude: { type: "string" },
      register: { type: "string" },
      intensity: { type: "string" },
    },
    HELP,
  );
  const config = getConfig(values.config!);
  if (config.inputHeight !== config.inputWidth) {
    fail(
      `config "${config.name}" needs ${config.inputHeight}x${config.inputWidth} input; the data pipeline letterboxes to squares only`,
    );
  }
  const settings = {
    epochs: numberOption("epochs", values.epochs!, { integer: true, min: 1 }),
    batch: numberOption("batch", values.batch!, { integer: true, min: 2 }),
    lr: numberOption("lr", values.lr!, { min: 1e-7 }),
    seed: numberOption("seed", values.seed!, { integer: true, min: 0 }),
    timeLimitMinutes: numberOption("time-limit", values["time-limit"]!, { min: 0 }),
  };
  const runDir = values.out ?? `runs/${config.name}`;
  if (values.intensity && !INTENSITIES.includes(values.intensity as Intensity)) {
    fail(`--intensity is "${values.intensity}": choose one of ${INTENSITIES.join(", ")}`);
  }
  if (values.intensity && !values.register) fail("--intensity needs --register KEYPOINT_DIR");

  let dataDir = values.data;
  if (!dataDir) {
    dataDir = DEFAULT_DATA;
    if (!await hasDataset(dataDir)) {
      console.log(
        `No data set in ${dataDir}/: generating ${SYNTH_COUNT} synthetic radiographs there first.\n` +
          REAL_DATA_HINT,
      );
      const progress = createProgress("synth", SYNTH_COUNT);
      await writeSynthDataset(dataDir, {
        n: SYNTH_COUNT,
        seed: 0,
        onProgress: () => progress.tick(),
      });
      progress.done();
    }
  }

  const metaPath = `${runDir}/${RUN_FILES.meta("last")}`;
  const exists = await Deno.stat(metaPath).then(() => true, () => false);
  if (exists && !values.resume) {
    fail(`${runDir} already holds a run: pass --resume to continue it, or another --out`);
  }
  if (!exists && values.resume) fail(`--resume: ${metaPath} does not exist`);
  await Deno.mkdir(runDir, { recursive: true });

  const engine = await Engine.create({ kernels: kernelsOption(values.kernels!) });
  console.log(
    `adapter: ${engine.info.description}${engine.info.isFallback ? " (software)" : ""}, ` +
      `${engine.kernels} convolution kernels`,
  );
  // A resumed run keeps its recipe; a new one records what the flags ask for.
  const recipe = values.resume
    ? (await readCheckpointMeta(runDir, "last")).recipe
    : values.register
    ? registeredRecipe((values.intensity ?? "stretch") as Intensity)
    : LEGACY_RECIPE;
  if (values.resume && values.register) {
    fail("--register: a resumed run keeps the recipe it was started with; leave out --register");
  }
  if (!values.resume && recipe.registration) {
    await copyKeypointCheckpoint(values.register!, `${runDir}/${recipe.registration.keypoints}`);
  }
  const prepared = await loadRecipe(engine, recipe, runDir);
  const loaded = await loadImageSet(dataDir, {
    size: config.inputHeight,
    fit: recipe.fit,
    strict: values.strict,
  });
  const { fingerprint } = loaded;
  let set = loaded.set;
  if (values.exclude) {
    const excluded = await readIdList(values.exclude);
    const keep = [...set.ids.keys()].filter((i) => !excluded.has(set.ids[i]));
    console.log(
      `--exclude: ${
        set.ids.length - keep.length
      } of the ${excluded.size} ids of ${values.exclude} ` +
        `are in ${dataDir} and stay out of training and validation`,
    );
    set = subsetImageSet(set, keep);
  }
  if (recipe.registration) {
    const t0 = performance.now();
    const prep = await prepareImageSet(set, prepared);
    const flipped = prep.inverted.filter(Boolean).length;
    const mirrored = prep.hands!.filter((h) => h.registration && h.mirrored).length;
    console.log(
      `registration: hands found in ${set.ids.length - prep.refused.length} of ${set.ids.length} ` +
        `images (${mirrored} right hands mirrored, ${flipped} inverted images flipped back) in ` +
        `${((performance.now() - t0) / 1000).toFixed(0)} s` +
        (prep.refused.length
          ? `; ${prep.refused.length} left out, no hand found, e.g. ` +
            prep.refused.slice(0, 3).map((r) => `${set.ids[r.row]} (${r.reason})`).join(", ")
          : ""),
    );
    const refused = new Set(prep.refused.map((r) => r.row));
    set = subsetImageSet(prep.set, [...set.ids.keys()].filter((i) => !refused.has(i)));
  }
  const labeled = set.boneage.every((a) => Number.isFinite(a));
  if (!labeled) fail(`${dataDir}: training needs bone ages, but its CSV has rows without one`);
  const split = values.resume
    ? await readSplit(runDir, set.ids)
    : splitDataset(set, { seed: settings.seed });
  if (split.missing?.length) {
    fail(
      `${runDir}/split.json names ${split.missing.length} ids that ${dataDir} no longer has (e.g. ${
        split.missing[0]
      })`,
    );
  }
  if (!values.resume) await writeSplit(runDir, split);
  const pixels = pixelStats(set, split.train);
  const ages = split.train.map((i) => set.boneage[i]);
  const ageMean = ages.reduce((a, b) => a + b, 0) / ages.length;
  const ageStd = Math.sqrt(ages.reduce((a, b) => a + (b - ageMean) ** 2, 0) / ages.length);
  console.log(
    `data: ${set.ids.length} images in ${dataDir}, ${split.train.length} train / ${split.val.length} validation; ` +
      `bone age ${ageMean.toFixed(1)} ± ${ageStd.toFixed(1)} months`,
  );
  const lowRes = config.lowRes
    ? `; ${config.lowRes.side}x${config.lowRes.side} for the first ${
      config.lowRes.until * 100
    }% of training`
    : "";
  console.log(
    `model: ${config.name} (${config.inputHeight}x${config.inputWidth}${lowRes}), ` +
      `run folder ${runDir}`,
  );

  let interrupts = 0;
  const onInterrupt = () => {
    if (++interrupts > 1) Deno.exit(130);
    console.error("\nCtrl-C: saving the last checkpoint, then stopping (Ctrl-C again to quit now)");
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  const status = statusLine();
  const result = await trainModel({
    engine,
    set,
    split,
    config,
    normalization: { pixelMean: pixels.mean, pixelStd: pixels.std, ageMean, ageStd },
    runDir,
    settings: {
      ...settings,
      data: dataDir,
      dataFingerprint: fingerprint,
      kernels: engine.kernels,
      exclude: values.exclude ?? null,
    },
    recipe,
    onNote: (line) => {
      status.clear();
      console.log(line);
    },
    resume: values.resume!,
    onProgress: status.update,
    onEpoch: (m, secondsLeft) => {
      status.clear();
      const ends = secondsLeft > 0
        ? `; the run ends around ${
          new Date(Date.now() + secondsLeft * 1000).toTimeString().slice(0, 5)
        } (in ${formatDuration(secondsLeft)})`
        : "";
      console.log(
        `epoch ${m.epoch}: train MAE ${m.train_mae_months.toFixed(2)} mo, val MAE ${
          m.val_mae.toFixed(2)
        } mo, ` +
          `${m.seconds.toFixed(0)} s, ${m.images_per_s.toFixed(1)} img/s${ends}`,
      );
    },
    shouldStop: () => interrupts > 0,
  });
  Deno.removeSignalListener("SIGINT", onInterrupt);
  status.clear();
  const how = {
    done: "finished",
    "time-limit": "used its time limit",
    interrupted: "interrupted",
  }[result.stopped];
  console.log(
    `${how}: best validation MAE ${result.bestValMae.toFixed(2)} months, ${
      result.imagesPerSecond.toFixed(1)
    } img/s. ` +
      `Checkpoints in ${runDir} (best, last).`,
  );
  if (result.stopped !== "done") {
    console.log(`Continue with: deno task train --out ${runDir} --resume ...`);
  }
  engine.destroy();
}

if (import.meta.main) await runTask(main);
