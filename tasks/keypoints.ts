/**
 * `deno task keypoints`: trains the hand keypoint model that registration uses, and reports
 * its point error on held-out radiographs beside the mean-position predictor's.
 *
 * @module
 */
import { decodeGray, letterboxBox, readImageFile } from "../src/data/image.ts";
import { readKeypoints } from "../src/data/keypoints.ts";
import { KEYPOINTS } from "../src/data/recipe.ts";
import { loadImageSet } from "../src/data/load.ts";
import { type ImageSet, subsetImageSet } from "../src/data/dataset.ts";
import { hashSeed } from "../src/ops/augment.ts";
import { mulberry32 } from "../src/util.ts";
import { Engine } from "../src/engine/engine.ts";
import { isLeftHand } from "../src/app/registration.ts";
import type { BoneAgeNet } from "../src/model/network.ts";
import {
  type HandednessMeta,
  type HandednessModel,
  KEYPOINT_FILES,
  KEYPOINT_SIDE,
  predictHandedness,
  predictKeypoints,
  saveKeypointCheckpoint,
  trainHandedness,
  trainKeypoints,
} from "../src/app/keypoints.ts";
import { fail, numberOption, parseCommandLine, runTask, type TaskHelp } from "./cli.ts";

/** `deno task keypoints --help`. */
export const HELP: TaskHelp = {
  usage: `deno task keypoints --data DIR --labels CSV [--out RUN_DIR] [--epochs N] [--batch B]
                           [--lr X] [--seed S] [--held-out N] [--handedness-epochs N]`,
  about: `Trains the two hand models that register every radiograph to one pose and size before
the bone-age model sees it: the keypoint model (middle fingertip, thumb tip, wrist of a left
hand) on the rows of CSV, and the handedness model (left hand, or right hand = mirror image)
on every radiograph of DIR, each shown as it is and mirrored. DIR is a Kaggle-layout folder
of left-hand radiographs, CSV a keypoint table (id,width,height,... then <point>_x,<point>_y,
<point>_v in pixels of the original radiograph; data/synth has one). --held-out N rows of CSV
(default 80) are kept out of both trainings and scored: mean point error in pixels of the
image files and as a fraction of the hand length, beside the mean-position predictor's; the
handedness model also keeps a tenth of DIR out, and is scored on those images both ways.
Writes keypoints.json, keypoints.safetensors and handedness.safetensors to RUN_DIR (default
runs/keypoints); pass that folder to deno task train --register RUN_DIR. Defaults: --epochs 60
--handedness-epochs 6 --batch 32 --lr 0.002 --seed 0.`,
  examples: [
    "deno task keypoints --data data/synth --labels data/synth/hand-keypoints.csv --epochs 15 --held-out 20 --out runs/example-keypoints",
  ],
};

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(
    args,
    {
      data: { type: "string" },
      labels: { type: "string" },
      out: { type: "string", default: "runs/keypoints" },
      epochs: { type: "string", default: "60" },
      batch: { type: "string", default: "32" },
      lr: { type: "string", default: "0.002" },
      seed: { type: "string", default: "0" },
      "held-out": { type: "string", default: "80" },
      "handedness-epochs": { type: "string", default: "6" },
    },
    HELP,
  );
  if (!values.data || !values.labels) {
    fail(`--data and --labels are required\nusage: ${HELP.usage}`);
  }
  const epochs = numberOption("epochs", values.epochs!, { integer: true, min: 1 });
  const batch = numberOption("batch", values.batch!, { integer: true, min: 2 });
  const lr = numberOption("lr", values.lr!, { min: 1e-7 });
  const seed = numberOption("seed", values.seed!, { integer: true, min: 0 });
  const heldOut = numberOption("held-out", values["held-out"]!, { integer: true, min: 1 });
  const sideEpochs = numberOption("handedness-epochs", values["handedness-epochs"]!, {
    integer: true,
    min: 1,
  });

  const table = await readKeypoints(values.labels);
  for (const s of table.skipped) {
    console.log(`${values.labels}:${s.line}: row ${s.id || "(no id)"} left out: ${s.reason}`);
  }
  const engine = await Engine.create();
  const loaded = await loadImageSet(values.data, { size: KEYPOINT_SIDE });
  const rowOf = new Map(loaded.set.ids.map((id, i) => [id, i]));
  const labelled = table.rows.filter((r) => rowOf.has(r.id));
  const noImage = table.rows.length - labelled.length;
  console.log(
    `keypoints: ${table.rows.length} rows in ${values.labels} (${table.skipped.length} left out), ` +
      `${labelled.length} with an image in ${values.data}` +
      (noImage ? `, ${noImage} without one (not used)` : ""),
  );
  if (labelled.length < heldOut + batch) {
    fail(
      `${labelled.length} labelled images are too few for --held-out ${heldOut} and --batch ${batch}`,
    );
  }
  const set = subsetImageSet(loaded.set, labelled.map((r) => rowOf.get(r.id)!));
  // Targets as fractions of the letterboxed frame; pixel scale of each image file, to report
  // errors in its pixels (letterboxing keeps the aspect, so one scale serves both axes).
  const n = KEYPOINTS.length;
  const targets = new Float32Array(labelled.length * 2 * n);
  const pixelScale = new Float64Array(labelled.length);
  for (const [i, row] of labelled.entries()) {
    const path = loaded.rows[rowOf.get(row.id)!].imagePath;
    const { width, height } = await decodeGray(await readImageFile(path));
    const box = letterboxBox(width, height, KEYPOINT_SIDE);
    for (let k = 0; k < n; k++) {
      targets[i * 2 * n + 2 * k] = (box.x + row.points[2 * k] * box.width) / KEYPOINT_SIDE;
      targets[i * 2 * n + 2 * k + 1] = (box.y + row.points[2 * k + 1] * box.height) / KEYPOINT_SIDE;
    }
    pixelScale[i] = Math.max(width, height);
  }
  const order = [...labelled.keys()];
  const rand = mulberry32(hashSeed(seed, 0x6b70));
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const test = order.slice(0, heldOut).sort((a, b) => a - b);
  const train = order.slice(heldOut).sort((a, b) => a - b);
  console.log(`training on ${train.length} radiographs, scoring ${test.length} held out`);

  const t0 = performance.now();
  const { model, normalization } = await trainKeypoints({
    engine,
    set,
    targets,
    rows: train,
    epochs,
    batch,
    lr,
    seed,
    onEpoch: (epoch, loss, seconds) =>
      console.log(`epoch ${epoch}/${epochs}: loss ${loss.toFixed(4)}, ${seconds.toFixed(1)} s`),
  });
  const trainSeconds = (performance.now() - t0) / 1000;

  const predicted = await predictKeypoints(model, normalization, set, test);
  const meanPosition = new Float64Array(2 * n);
  for (const r of train) {
    for (let c = 0; c < 2 * n; c++) meanPosition[c] += targets[r * 2 * n + c] / train.length;
  }
  let err = 0, meanErr = 0, relErr = 0, length = 0;
  const perPoint = new Array(n).fill(0);
  test.forEach((r, j) => {
    const at = (a: ArrayLike<number>, o: number, k: number) => [a[o + 2 * k], a[o + 2 * k + 1]];
    const hand = Math.hypot(
      targets[r * 2 * n] - targets[r * 2 * n + 4],
      targets[r * 2 * n + 1] - targets[r * 2 * n + 5],
    ) * pixelScale[r];
    for (let k = 0; k < n; k++) {
      const [tx, ty] = at(targets, r * 2 * n, k);
      const [px, py] = at(predicted, j * 2 * n, k);
      const [mx, my] = at(meanPosition, 0, k);
      const e = Math.hypot(px - tx, py - ty) * pixelScale[r];
      err += e / n;
      perPoint[k] += e / test.length;
      relErr += e / hand / n;
      meanErr += Math.hypot(mx - tx, my - ty) * pixelScale[r] / n;
    }
    length += hand;
  });
  const evaluation = {
    held_out: test.length,
    mean_point_error_px: err / test.length,
    per_point_error_px: Object.fromEntries(KEYPOINTS.map((k, i) => [k, perPoint[i]])),
    mean_point_error_hand_fraction: relErr / test.length,
    mean_position_error_px: meanErr / test.length,
    mean_hand_length_px: length / test.length,
    held_out_ids: test.map((r) => set.ids[r]),
  };
  console.log(
    `held-out mean point error ${evaluation.mean_point_error_px.toFixed(2)} px ` +
      `(${(100 * evaluation.mean_point_error_hand_fraction).toFixed(1)}% of the hand length, ` +
      `${evaluation.mean_hand_length_px.toFixed(1)} px on average); the mean-position predictor: ` +
      `${evaluation.mean_position_error_px.toFixed(2)} px`,
  );
  console.log(
    `  per point: ${KEYPOINTS.map((k, i) => `${k} ${perPoint[i].toFixed(2)} px`).join(", ")}`,
  );
  // Whether each held-out row's annotations show a left hand.
  const handedness = await handednessRun(
    loaded.set,
    new Map(test.map((r) => [set.ids[r], isLeftHand(targets.subarray(r * 2 * n))])),
    { engine, epochs: sideEpochs, batch, lr, seed },
  );
  await saveKeypointCheckpoint(values.out!, model, {
    normalization,
    settings: {
      data: values.data,
      labels: values.labels,
      epochs,
      batch,
      lr,
      seed,
      train_rows: train.length,
      train_seconds: trainSeconds,
    },
    evaluation,
  }, handedness);
  console.log(
    `wrote ${values.out}/${KEYPOINT_FILES.meta}, ${KEYPOINT_FILES.weights} and ` +
      KEYPOINT_FILES.handedness,
  );
  engine.destroy();
}

/**
 * The handedness model's rows of `all`: all but a seeded tenth and the keypoint model's
 * held-out rows, which are scored instead.
 */
export function handednessSplit(
  all: ImageSet,
  keptOut: ReadonlyMap<string, boolean>,
  seed: number,
): { train: number[]; test: number[] } {
  const rand = mulberry32(hashSeed(seed, 0x68616e64));
  const test: number[] = [], train: number[] = [];
  all.ids.forEach((id, r) => (keptOut.has(id) || rand() < 0.1 ? test : train).push(r));
  return { train, test };
}

/**
 * Scores the handedness model on `test` rows of `all`: which it takes for right hands (the
 * RSNA folders hold a few real ones, which it should), and how many of the rows whose hand
 * the keypoint table shows (`truth`: id -> is a left hand) it gets wrong. Its answer for
 * a mirror image is the opposite by construction, so each error counts for both.
 */
export async function handednessEvaluation(
  handedness: HandednessModel,
  all: ImageSet,
  test: readonly number[],
  truth: ReadonlyMap<string, boolean>,
): Promise<Record<string, unknown>> {
  const sides = await predictHandedness(
    handedness,
    subsetImageSet(all, test),
    test.map((_, i) => i),
  );
  const right = test.filter((_, i) => sides[i] < 0).map((r) => all.ids[r]);
  const known = test.flatMap((r, i) => (truth.has(all.ids[r]) ? [[r, i]] : []));
  const wrong = known.filter(([r, i]) => (sides[i] >= 0) !== truth.get(all.ids[r])).map(([r]) =>
    all.ids[r]
  );
  return {
    held_out: test.length,
    called_right: right.length,
    called_right_ids: right,
    annotated_held_out: known.length,
    annotated_wrong: wrong.length,
    annotated_wrong_ids: wrong,
    held_out_ids: test.map((r) => all.ids[r]),
  };
}

/**
 * Trains the handedness model on {@link handednessSplit}'s rows of `all` and scores it on
 * the others ({@link handednessEvaluation}); `keptOut` maps the keypoint model's held-out ids
 * to whether their annotations show a left hand.
 */
export async function handednessRun(
  all: ImageSet,
  keptOut: ReadonlyMap<string, boolean>,
  o: { engine: Engine; epochs: number; batch: number; lr: number; seed: number },
): Promise<{ model: BoneAgeNet; meta: Omit<HandednessMeta, "config"> }> {
  const { train, test } = handednessSplit(all, keptOut, o.seed);
  if (train.length < o.batch) {
    fail(
      `${train.length} radiographs are too few to train the handedness model (--batch ${o.batch})`,
    );
  }
  console.log(
    `handedness: training on ${train.length} radiographs and their mirror images, ` +
      `scoring ${test.length} held out`,
  );
  const t0 = performance.now();
  const { model, normalization } = await trainHandedness({
    ...o,
    set: all,
    rows: train,
    onEpoch: (epoch, loss, seconds) =>
      console.log(
        `handedness epoch ${epoch}/${o.epochs}: loss ${loss.toFixed(4)}, ${seconds.toFixed(1)} s`,
      ),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const evaluation = await handednessEvaluation({ model, normalization }, all, test, keptOut);
  console.log(
    `handedness on ${test.length} held-out radiographs: ${evaluation.called_right} taken for ` +
      `right hands (${(evaluation.called_right_ids as string[]).slice(0, 8).join(", ")}` +
      `${(evaluation.called_right as number) > 8 ? ", ..." : ""}); of the ` +
      `${evaluation.annotated_held_out} whose keypoints are annotated, ` +
      `${evaluation.annotated_wrong} taken for the wrong hand`,
  );
  return {
    model,
    meta: {
      normalization,
      settings: {
        epochs: o.epochs,
        batch: o.batch,
        lr: o.lr,
        seed: o.seed,
        train_rows: train.length,
        train_seconds: trainSeconds,
      },
      evaluation,
    },
  };
}

if (import.meta.main) await runTask(main);
