/**
 * `deno task tour`: one training step of the `small` model on one radiograph, narrated op by
 * op: which `.wgsl` kernel computed each layer and its backward, dispatch sizes, GPU times,
 * and each result next to its float64 CPU twin. The logic lives in `src/tour/`.
 *
 *     deno task tour [--image PATH] [--sex M|F] [--age MONTHS] [--save DIR]
 *
 * Without `--image` the radiograph is a generated one (`src/data/synth.ts`) with its own sex
 * and bone-age label. Either is prepared by the image recipe of `--checkpoint` (default: the
 * shipped weights), as train, eval and predict prepare theirs. `--age` is the bone age the step trains towards (default: the generated
 * label, or 127 months for a real image). `--save DIR` writes PNGs of the input, feature maps
 * and the gradient with respect to the input.
 *
 * @module
 */
import { decodeGray, type GrayImage, readImageFile } from "../src/data/image.ts";
import type { SynthSubject } from "../src/data/synth.ts";
import { getConfig } from "../src/model/configs.ts";
import { describePreparation, loadRecipe, prepareRadiograph } from "../src/app/prepare.ts";
import { readCheckpointMeta } from "../src/app/checkpoint.ts";
import {
  formatTour,
  runTour,
  saveTourImages,
  syntheticRadiograph,
  TOUR_AGE,
} from "../src/app/tour/mod.ts";
import { Engine } from "../src/engine/engine.ts";
import {
  fail,
  kernelsOption,
  numberOption,
  parseCommandLine,
  runTask,
  SHIPPED_CHECKPOINT,
  type TaskHelp,
} from "./cli.ts";
import { parseSexOption } from "./predict.ts";

/** `deno task tour --help`. */
export const HELP: TaskHelp = {
  usage:
    "deno task tour [--image PATH --sex M|F] [--age MONTHS] [--checkpoint RUN_DIR] [--unregistered] [--save DIR] [--kernels auto|rows|generic]",
  about: `Takes one radiograph (a generated one without --image) through one training step of the
small model and narrates every op: kernel file and entry point, shapes, dispatch, FLOPs, GPU
time, and its values next to the float64 reference. The radiograph is first prepared by the
image recipe of --checkpoint (default: the shipped weights/): a registered recipe finds the
hand and stops when there is none, unless --unregistered. --save DIR writes pictures of the input,
feature maps and the gradient with respect to the input. --kernels picks the convolution
kernels (default auto: rows on a CPU adapter, generic on a GPU).`,
  examples: [
    "deno task tour --save runs/tour",
    "deno task tour --image data/synth/boneage-training-dataset/3.png --sex F --age 120",
  ],
};

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(
    args,
    {
      image: { type: "string" },
      sex: { type: "string" },
      age: { type: "string" },
      save: { type: "string" },
      checkpoint: { type: "string", default: SHIPPED_CHECKPOINT },
      unregistered: { type: "boolean", default: false },
      kernels: { type: "string", default: "auto" },
    },
    HELP,
  );
  const male = values.sex === undefined ? undefined : parseSexOption(values.sex);
  const age = values.age === undefined
    ? undefined
    : numberOption("age", values.age, { min: 0, max: 300 });
  if (values.save !== undefined) {
    // Ask before the step rather than fail after it.
    const state = (await Deno.permissions.query({ name: "write", path: values.save })).state;
    if (state !== "granted") {
      fail(
        `cannot write to ${values.save}: deno task tour may write only inside this folder. ` +
          `Choose --save DIR here (e.g. runs/tour), or run it with your own permission: ` +
          `deno run --allow-read --allow-write=${values.save} --allow-env tasks/tour.ts ...`,
      );
    }
  }

  const size = getConfig("small").inputHeight;
  let radiograph: { gray: GrayImage; source: string; subject?: SynthSubject };
  if (values.image !== undefined) {
    if (male === undefined) fail(`--sex M|F is needed with --image\nusage: ${HELP.usage}`);
    let bytes: Uint8Array;
    try {
      bytes = await readImageFile(values.image);
    } catch (err) {
      return fail(`cannot read ${values.image}: ${(err as Error).message}`);
    }
    let gray;
    try {
      gray = await decodeGray(bytes);
    } catch (err) {
      return fail(
        `${values.image} is not a PNG or JPEG radiograph we can decode: ${(err as Error).message}`,
      );
    }
    radiograph = { gray, source: `${values.image} (${gray.width}x${gray.height})` };
  } else {
    radiograph = syntheticRadiograph();
  }
  const sex = male ?? radiograph.subject!.male;

  const engine = await Engine.create({ kernels: kernelsOption(values.kernels!) });
  const checkpoint = values.checkpoint!;
  const { recipe } = await readCheckpointMeta(checkpoint, "best");
  const prepared = await prepareRadiograph(
    radiograph.gray,
    sex,
    size,
    await loadRecipe(engine, recipe, checkpoint),
    radiograph.source,
  );
  if (prepared.hand && !prepared.hand.registration && !values.unregistered) {
    fail(
      `no hand found in ${radiograph.source}: ${prepared.hand.refusal}. The recipe of ` +
        `${checkpoint} registers hands; pass --unregistered to take the whole image anyway`,
    );
  }
  const image = {
    pixels: prepared.crop,
    size,
    source:
      `${radiograph.source}, prepared by the image recipe of the checkpoint in ${checkpoint}: ` +
      describePreparation(recipe, prepared) +
      (age === undefined && !radiograph.subject
        ? `; no label given, so the target is ${TOUR_AGE.mean} months`
        : ""),
    subject: radiograph.subject,
  };
  const result = await runTour({ engine, image, male: sex, targetMonths: age });
  engine.destroy();
  for (const line of formatTour(result)) console.log(line);
  if (values.save !== undefined) {
    const files = await saveTourImages(result, values.save);
    console.log(`\nPictures in ${values.save}:`);
    for (const { file, what } of files) console.log(`  ${file}\n      ${what}`);
  }
}

if (import.meta.main) await runTask(main);
