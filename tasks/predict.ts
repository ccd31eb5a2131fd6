/**
 * `deno task predict`: the bone age of one radiograph.
 *
 *     deno task predict IMAGE --sex M|F [--age MONTHS] --checkpoint RUN_DIR [--heatmap OUT.png] [--json]
 *
 * @module
 */
import { decodeGray, readImageFile } from "../src/data/image.ts";
import { encodeGrayPng } from "../src/data/png.ts";
import { describePreparation, loadRecipe, prepareRadiograph } from "../src/app/prepare.ts";
import { Engine } from "../src/engine/engine.ts";
import { occlusionMap, renderHeatmapPng } from "../src/app/occlusion.ts";
import { loadCheckpoint } from "../src/app/checkpoint.ts";
import { predictMonths } from "../src/app/predict.ts";
import { describeDifference, NOT_A_DEVICE, yearsAndMonths } from "../src/app/wording.ts";
import {
  fail,
  numberOption,
  parseCommandLine,
  runTask,
  SHIPPED_CHECKPOINT,
  type TaskHelp,
} from "./cli.ts";

/** `deno task predict --help`. */
export const HELP: TaskHelp = {
  usage:
    "deno task predict IMAGE --sex M|F [--age MONTHS] [--checkpoint RUN_DIR] [--heatmap OUT.png] [--json] [--unregistered]",
  about: `Prints the bone age of one radiograph of the left hand (PNG or JPEG, any size) with the
model's validation MAE as its uncertainty. A registered model first finds the hand (a right
hand is mirrored, an inverted image flipped back) and stops when it finds none, unless
--unregistered asks for the whole unregistered image; --json includes the prepared input the
network saw, as a PNG data URL. --age adds the difference to the chronological age;
--heatmap writes the occlusion map over the radiograph (red: regions that made the hand look
older). --checkpoint defaults to the shipped weights/. Research software, not a medical device.`,
  examples: [
    "deno task predict data/synth/boneage-training-dataset/1.png --sex M --age 150 --checkpoint runs/example",
    "deno task predict data/synth/boneage-training-dataset/2.png --sex F --checkpoint runs/example --heatmap runs/example/heatmap.png --json",
  ],
};

/** Parses `--sex`: M/F (any case, or male/female). */
export function parseSexOption(value: string | undefined): 0 | 1 {
  const v = (value ?? "").trim().toLowerCase();
  if (v === "m" || v === "male") return 1;
  if (v === "f" || v === "female") return 0;
  return fail(`--sex must be M or F, got "${value ?? ""}"`);
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(
    args,
    {
      sex: { type: "string" },
      age: { type: "string" },
      checkpoint: { type: "string", default: SHIPPED_CHECKPOINT },
      heatmap: { type: "string" },
      json: { type: "boolean", default: false },
      unregistered: { type: "boolean", default: false },
    },
    HELP,
    true,
  );
  if (positionals.length !== 1) fail(`give exactly one image\nusage: ${HELP.usage}`);
  const imagePath = positionals[0];
  const male = parseSexOption(values.sex);
  const age = values.age === undefined
    ? undefined
    : numberOption("age", values.age, { min: 0, max: 300 });

  let bytes: Uint8Array;
  try {
    bytes = await readImageFile(imagePath);
  } catch (err) {
    return fail(`cannot read ${imagePath}: ${(err as Error).message}`);
  }
  let gray;
  try {
    gray = await decodeGray(bytes);
  } catch (err) {
    return fail(
      `${imagePath} is not a PNG or JPEG radiograph we can decode: ${(err as Error).message}`,
    );
  }

  const engine = await Engine.create();
  const { model, meta } = await loadCheckpoint(engine, values.checkpoint, "best");
  const size = meta.config.inputHeight;
  const prepared = await prepareRadiograph(
    gray,
    male,
    size,
    await loadRecipe(engine, meta.recipe, values.checkpoint),
    imagePath,
  );
  const { hand, set, crop } = prepared;
  if (hand && !hand.registration && !values.unregistered) {
    fail(
      `no hand found in ${imagePath}: ${hand.refusal}. The model reads registered left-hand ` +
        `radiographs; pass --unregistered to estimate from the whole image anyway`,
    );
  }
  const [months] = await predictMonths(model, set, [0], meta.normalization);
  const uncertainty = meta.valMae;
  const result: Record<string, unknown> = {
    image: imagePath,
    sex: male ? "M" : "F",
    bone_age_months: Number(months.toFixed(1)),
    bone_age_years: Number((months / 12).toFixed(2)),
    uncertainty_months: Number(uncertainty.toFixed(1)),
    model: meta.config.name,
    hand: hand
      ? {
        found: hand.registration !== null,
        mirrored: hand.registration !== null && hand.mirrored,
        inverted: prepared.inverted,
      }
      : "not registered (the model was trained on unregistered images)",
    prepared_input_png: `data:image/png;base64,${
      btoa(Array.from(encodeGrayPng(crop, size, size), (b) => String.fromCharCode(b)).join(""))
    }`,
    notice: NOT_A_DEVICE,
  };
  const lines = [
    `Bone age: ${months.toFixed(1)} months (${yearsAndMonths(months)}), ± ${
      uncertainty.toFixed(1)
    } months ` +
    `(the model's mean absolute error on its validation split)`,
  ];
  if (hand) lines.push(`Input: ${describePreparation(meta.recipe, prepared)}.`);
  if (age !== undefined) {
    const { difference, text } = describeDifference(months, age, uncertainty);
    result.chronological_age_months = age;
    result.difference_months = Number(difference.toFixed(1));
    lines.push(`Chronological age ${age} months (${yearsAndMonths(age)}). ${text}`);
  }
  if (values.heatmap) {
    // The occluder moves over what the network saw; a registered model's map lies over that crop.
    const map = await occlusionMap(model, crop, size, male, meta.normalization, months);
    const under = hand ? { width: size, height: size, data: crop } : gray;
    await Deno.writeFile(values.heatmap, renderHeatmapPng(under, size, map));
    result.heatmap = values.heatmap;
    lines.push(
      `Occlusion heatmap written to ${values.heatmap} (red: regions that raised the estimate)`,
    );
  }
  lines.push(NOT_A_DEVICE);
  if (values.json) {
    lines.forEach((l) => console.error(l));
    console.log(JSON.stringify(result));
  } else lines.forEach((l) => console.log(l));
  engine.destroy();
}

if (import.meta.main) await runTask(main);
