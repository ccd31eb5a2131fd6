/**
 * The bone-age reader as the web page runs it: the same engine, kernels, checkpoint format,
 * decoder, image recipe (`prepareRadiograph`: polarity, hand registration, intensity) and
 * prediction code as `deno task predict`, with what the CLI reads from disk (kernels, the
 * checkpoint and its keypoint checkpoint) fetched from the page's server instead.
 *
 * Nothing here sends the radiograph anywhere: its bytes come from a local file the user
 * picked, are decoded in this page and go only to the GPU.
 *
 * Everything imported here must bundle for the browser: `tasks/bundle.ts` refuses Node
 * built-ins it does not map and reports any `Deno.` reference left in the bundle.
 *
 * @module
 */
import {
  type CheckpointMeta,
  checkSameGeneration,
  loadModelWeights,
  parseCheckpointMeta,
} from "../checkpoint.ts";
import { decodeGray, type GrayImage, letterboxBox } from "../../data/image.ts";
import type { LetterboxBox } from "../../data/image.ts";
import { Engine } from "../../engine/engine.ts";
import { KEYPOINT_FILES, keypointModelFromFiles, parseKeypointMeta } from "../keypoints.ts";
import { BoneAgeNet } from "../../model/network.ts";
import { type OcclusionMap, occlusionMap } from "../occlusion.ts";
import {
  describePreparation,
  type PreparedRadiograph,
  type PreparedRecipe,
  prepareRadiograph,
} from "../prepare.ts";
import { KEYPOINT_DIR } from "../../data/recipe.ts";
import { predictMonths } from "../predict.ts";
import { fetchKernels } from "./kernels.ts";

/** The browser has no usable WebGPU; the message says how to get it. */
export class NoWebGpuError extends Error {
  /** `missing`: no `navigator.gpu`; `no-adapter`: WebGPU exists but offers no adapter. */
  readonly reason: "missing" | "no-adapter";
  /** Builds the message for `reason`. */
  constructor(reason: "missing" | "no-adapter") {
    super(
      reason === "missing"
        ? "This browser does not offer WebGPU, which the model runs on."
        : "WebGPU is switched on, but the browser found no graphics adapter to run it on.",
    );
    this.name = "NoWebGpuError";
    this.reason = reason;
  }
}

/** The checkpoint is missing, unreadable or does not fit its model. */
export class CheckpointError extends Error {
  /** Wraps `message`. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** No hand was found in the radiograph (a registered model reads nothing else). */
export class NoHandError extends Error {
  /** Wraps `message`. */
  constructor(message: string) {
    super(message);
    this.name = "NoHandError";
  }
}

/** The chosen file is not a radiograph this reader can decode. */
export class NotAnImageError extends Error {
  /** Wraps `message`. */
  constructor(message: string) {
    super(message);
    this.name = "NotAnImageError";
  }
}

/** URLs the reader fetches, relative to the page. */
export const READER_URLS = {
  kernels: "kernels/",
  meta: "checkpoint/best.json",
  weights: "checkpoint/best.safetensors",
  keypointsMeta: `checkpoint/${KEYPOINT_DIR}/${KEYPOINT_FILES.meta}`,
  keypointsWeights: `checkpoint/${KEYPOINT_DIR}/${KEYPOINT_FILES.weights}`,
  handednessWeights: `checkpoint/${KEYPOINT_DIR}/${KEYPOINT_FILES.handedness}`,
} as const;

/** A decoded radiograph and the model's input made from it. */
export interface PreparedImage {
  /** The radiograph in 8-bit gray at full resolution (what the CLI decodes). */
  gray: GrayImage;
  /** The model's `size x size` input as it sees it (the registered hand, or the letterbox). */
  pixels: Uint8Array;
  /** Side of the model input. */
  size: number;
  /** Where the radiograph lies inside the letterboxed input; null for a registered hand. */
  box: LetterboxBox | null;
  /** The recipe's work on it (one-row set, hand found, polarity). */
  prepared: PreparedRadiograph;
  /** That work in words, for the caption (`describePreparation`). */
  description: string;
}

/** One estimate. */
export interface Estimate {
  /** Predicted bone age, months (unrounded). */
  months: number;
  /** The model's validation MAE, months: the uncertainty shown with the estimate. */
  uncertainty: number;
  /** Occlusion sensitivity over the model input. */
  occlusion: OcclusionMap;
  /** Milliseconds the prediction and the occlusion map took. */
  milliseconds: number;
}

/**
 * Checks that WebGPU can give us an adapter, so the page can say so plainly instead of
 * failing deep inside the engine.
 */
export async function checkWebGpu(): Promise<void> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new NoWebGpuError("missing");
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) throw new NoWebGpuError("no-adapter");
}

/**
 * Checks a checkpoint's JSON with the CLI's own checks (`parseCheckpointMeta` of
 * `src/app/checkpoint.ts`), and that its model takes square input (the letterbox is square;
 * `predict` relies on that too).
 */
export function parseReaderCheckpoint(text: string, source: string): CheckpointMeta {
  let meta: CheckpointMeta;
  try {
    meta = parseCheckpointMeta(text, source, "best");
  } catch (err) {
    throw new CheckpointError((err as Error).message);
  }
  if (meta.config.inputHeight !== meta.config.inputWidth) {
    throw new CheckpointError(
      `${source}: the "${meta.config.name}" model takes ${meta.config.inputHeight}x` +
        `${meta.config.inputWidth} input, but radiographs are letterboxed to squares`,
    );
  }
  return meta;
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new CheckpointError(`could not fetch the ${what} (${url}): ${(err as Error).message}`);
  }
  if (response.status === 404) {
    throw new CheckpointError(
      `the server has no checkpoint to give (${url} not found). Start it with a trained run: ` +
        "deno task serve --checkpoint RUN_DIR",
    );
  }
  if (!response.ok) {
    throw new CheckpointError(`could not fetch the ${what} (${url}): HTTP ${response.status}`);
  }
  return response;
}

/** The model, loaded once per page, and the estimate for one radiograph at a time. */
export class BoneAgeReader {
  /** The engine the model runs on. */
  readonly engine: Engine;
  /** The network with the checkpoint's weights. */
  readonly model: BoneAgeNet;
  /** The checkpoint's description (config, normalization, validation MAE). */
  readonly meta: CheckpointMeta;
  /** Its image recipe, with the keypoint model when it registers hands. */
  readonly recipe: PreparedRecipe;

  private constructor(
    engine: Engine,
    model: BoneAgeNet,
    meta: CheckpointMeta,
    recipe: PreparedRecipe,
  ) {
    this.engine = engine;
    this.model = model;
    this.meta = meta;
    this.recipe = recipe;
  }

  /**
   * Checks WebGPU, fetches the kernels and the checkpoint, builds the engine and the model.
   * Throws {@link NoWebGpuError} or {@link CheckpointError} with a message for the page.
   */
  static async open(onStatus: (line: string) => void = () => {}): Promise<BoneAgeReader> {
    onStatus("Checking WebGPU…");
    await checkWebGpu();
    onStatus("Loading the kernels and the checkpoint…");
    const [loadKernel, metaText, weights] = await Promise.all([
      fetchKernels(READER_URLS.kernels),
      fetchOk(READER_URLS.meta, "checkpoint description").then((r) => r.text()),
      fetchOk(READER_URLS.weights, "checkpoint weights").then((r) => r.arrayBuffer()),
    ]);
    const meta = parseReaderCheckpoint(metaText, READER_URLS.meta);
    onStatus("Building the model on the GPU…");
    const engine = await Engine.create({ loadKernel });
    try {
      let model: BoneAgeNet;
      try {
        model = new BoneAgeNet(engine, meta.config);
      } catch (err) {
        throw new CheckpointError(
          `${READER_URLS.meta} describes a model this engine cannot build: ${
            (err as Error).message
          }`,
        );
      }
      try {
        const stamp = loadModelWeights(model, new Uint8Array(weights), READER_URLS.weights);
        checkSameGeneration(stamp, READER_URLS.weights, meta, READER_URLS.meta);
      } catch (err) {
        throw new CheckpointError((err as Error).message);
      }
      const recipe: PreparedRecipe = { recipe: meta.recipe, keypoints: null };
      if (meta.recipe.registration) {
        onStatus("Loading the hand keypoint model…");
        const [text, bytes] = await Promise.all([
          fetchOk(READER_URLS.keypointsMeta, "keypoint checkpoint").then((r) => r.text()),
          fetchOk(READER_URLS.keypointsWeights, "keypoint weights").then((r) => r.arrayBuffer()),
        ]);
        try {
          const hasHandedness = parseKeypointMeta(text, READER_URLS.keypointsMeta).handedness;
          const handedness = hasHandedness
            ? await fetchOk(READER_URLS.handednessWeights, "handedness weights").then((r) =>
              r.arrayBuffer()
            )
            : null;
          recipe.keypoints = keypointModelFromFiles(
            engine,
            { path: READER_URLS.keypointsMeta, text },
            { path: READER_URLS.keypointsWeights, bytes: new Uint8Array(bytes) },
            handedness &&
              { path: READER_URLS.handednessWeights, bytes: new Uint8Array(handedness) },
          );
        } catch (err) {
          throw new CheckpointError((err as Error).message);
        }
      }
      await engine.sync();
      return new BoneAgeReader(engine, model, meta, recipe);
    } catch (err) {
      engine.destroy();
      throw err;
    }
  }

  /** Side of the model's square input. */
  get size(): number {
    return this.meta.config.inputHeight;
  }

  /**
   * Decodes a file's bytes to gray and prepares it by the checkpoint's recipe, exactly as
   * `deno task predict` does (`prepareRadiograph`). Throws {@link NotAnImageError} for
   * anything that is not a PNG or JPEG we can decode, and {@link NoHandError} when the
   * model registers hands and none is found: the page never shows an unregistered estimate.
   */
  async prepare(bytes: Uint8Array): Promise<PreparedImage> {
    let gray: GrayImage;
    try {
      gray = await decodeGray(bytes);
    } catch (err) {
      throw new NotAnImageError((err as Error).message);
    }
    const size = this.size;
    // The sex is chosen later; `estimate` sets it on the prepared row.
    const prepared = await prepareRadiograph(gray, 0, size, this.recipe);
    if (prepared.hand && !prepared.hand.registration) {
      throw new NoHandError(
        `No hand was found in this radiograph: ${prepared.hand.refusal}. The model reads ` +
          "left-hand radiographs registered by their fingertips and wrist.",
      );
    }
    return {
      gray,
      pixels: prepared.crop,
      size,
      box: prepared.hand ? null : letterboxBox(gray.width, gray.height, size),
      prepared,
      description: describePreparation(this.recipe.recipe, prepared),
    };
  }

  /**
   * The bone age for a prepared radiograph and the child's sex (1 male, 0 female), through
   * `predictMonths` like the CLI, and its occlusion map (`occlusionMap`, as `--heatmap`).
   */
  async estimate(image: PreparedImage, male: 0 | 1): Promise<Estimate> {
    const started = performance.now();
    const { size, pixels } = image;
    const set = { ...image.prepared.set, male: new Uint8Array([male]) };
    const norm = this.meta.normalization;
    const [months] = await predictMonths(this.model, set, [0], norm);
    const occlusion = await occlusionMap(this.model, pixels, size, male, norm, months);
    return {
      months,
      uncertainty: this.meta.valMae,
      occlusion,
      milliseconds: performance.now() - started,
    };
  }
}
