/**
 * Prepares images by a checkpoint's recipe (`src/data/recipe.ts`): polarity, registration and
 * intensity, the one path by which train, eval, predict, heatmap, tour and the browser bring
 * a radiograph to the model.
 *
 * @module
 */
import { IDENTITY, packParams } from "../ops/augment.ts";
import type { ImageSet } from "../data/dataset.ts";
import { fitSquare, type GrayImage } from "../data/image.ts";
import { augmentReference } from "../ref/augment.ts";
import {
  applyTableInPlace,
  borderMedian,
  equalizationTable,
  invertInPlace,
  looksInverted,
  medianWhere,
  stretchTable,
} from "../data/intensity.ts";
import type { Engine } from "../engine/engine.ts";
import { type HandFinder, loadKeypointModel } from "./keypoints.ts";
import type { Recipe } from "../data/recipe.ts";
import { findHands, type HandFinding } from "./registration.ts";

/**
 * Where the palm lies in the registered crop (frame fractions, between the canonical wrist
 * and fingertips), and how much brighter than the image's border (its background) its median
 * must be. On 1,500 rsna-100px radiographs the palm's median was 12 or more levels above the
 * border for 98.5% of the hands found and under 8 for 0.6%; a flat gray or a noise image is
 * within a few levels.
 */
export const PALM = { x: [0.3, 0.6], y: [0.45, 0.7], minAboveBackground: 8 };

/** A recipe with what it needs to run: the hand models when it registers. */
export interface PreparedRecipe {
  recipe: Recipe;
  keypoints: HandFinder | null;
}

/** Loads what `recipe` needs from the run folder `runDir`. */
export async function loadRecipe(
  engine: Engine,
  recipe: Recipe,
  runDir: string,
): Promise<PreparedRecipe> {
  if (!recipe.registration) return { recipe, keypoints: null };
  return {
    recipe,
    keypoints: await loadKeypointModel(engine, `${runDir}/${recipe.registration.keypoints}`),
  };
}

/** What {@link prepareImageSet} did to each image. */
export interface Preparation {
  /** The set as the model reads it (a copy when anything changed). */
  set: ImageSet;
  /** Per image, the hand found (null for an unregistered recipe). */
  hands: HandFinding[] | null;
  /** Per image, whether it looked inverted and was flipped back. */
  inverted: boolean[];
  /** Rows where no hand was found, with the reason. */
  refused: { row: number; reason: string }[];
}

/**
 * Prepares a stored set (loaded with `recipe.fit`) the way `prepared.recipe` says. Rows with
 * no hand keep the identity registration and are listed in `refused`: the caller decides
 * whether to leave them out (training, evaluation) or to stop (prediction).
 */
export async function prepareImageSet(
  set: ImageSet,
  prepared: PreparedRecipe,
): Promise<Preparation> {
  const { recipe, keypoints } = prepared;
  const n = set.ids.length;
  if (!recipe.registration || !keypoints) {
    return { set, hands: null, inverted: new Array(n).fill(false), refused: [] };
  }
  const S = set.size, plane = S * S;
  const images = set.images.slice();
  const inverted = set.ids.map((_, i) => {
    const pixels = images.subarray(i * plane, (i + 1) * plane);
    const flip = looksInverted(pixels, S);
    if (flip) invertInPlace(pixels);
    return flip;
  });
  const upright: ImageSet = { ...set, images };
  const hands = await findHands(keypoints, upright);
  const registration = new Float32Array(6 * n);
  const refused: Preparation["refused"] = [];
  hands.forEach((h, i) => registration.set(h.registration ?? [1, 0, 0, 0, 1, 0], 6 * i));
  const registered: ImageSet = { ...upright, registration };
  hands.forEach((h, i) => {
    if (h.registration) {
      // The keypoint model places points on anything; a radiograph's palm is brighter than
      // its background, which a blank, gray or noise image's "palm" is not.
      const pixels = images.subarray(i * plane, (i + 1) * plane);
      const palm = medianWhere(preparedCrop(registered, i), S, (x, y) => {
        const fx = (x + 0.5) / S, fy = (y + 0.5) / S;
        return fx > PALM.x[0] && fx < PALM.x[1] && fy > PALM.y[0] && fy < PALM.y[1];
      });
      const above = palm - borderMedian(pixels, S);
      if (above < PALM.minAboveBackground) {
        h.registration = null;
        h.refusal = `the palm is ${above} gray levels above the background, under ` +
          `${PALM.minAboveBackground}: this does not look like a hand radiograph`;
        registration.set([1, 0, 0, 0, 1, 0], 6 * i);
      }
    }
    if (!h.registration) refused.push({ row: i, reason: h.refusal! });
    else if (recipe.intensity !== "none") {
      const pixels = images.subarray(i * plane, (i + 1) * plane);
      const table = recipe.intensity === "stretch" ? stretchTable : equalizationTable;
      applyTableInPlace(pixels, table(pixels, S, h.registration));
    }
  });
  return { set: registered, hands, inverted, refused };
}

/**
 * Image `row` of a prepared set as the model reads it: the registered crop at the stored
 * side, in bytes (the float64 twin of the augmentation kernel, identity augmentation). What
 * `predict --json` and the reader page show, and what the occlusion heatmap hides parts of.
 */
export function preparedCrop(set: ImageSet, row: number): Uint8Array {
  const S = set.size, plane = S * S;
  const reg = set.registration?.subarray(6 * row, 6 * row + 6);
  const params = packParams([IDENTITY], S, 0, 1, S, reg && [reg]);
  const values = augmentReference(set.images.subarray(row * plane, (row + 1) * plane), params, S);
  return Uint8Array.from(values, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
}

/** One radiograph prepared for the model by {@link prepareRadiograph}. */
export interface PreparedRadiograph {
  /** A one-row set as the model reads it (`predictMonths(model, set, [0], ...)`). */
  set: ImageSet;
  /** The model's input as it sees it, `size x size` bytes ({@link preparedCrop}). */
  crop: Uint8Array;
  /** The hand found, or null for an unregistered recipe. */
  hand: HandFinding | null;
  /** Whether the radiograph looked inverted (MONOCHROME1) and was flipped back. */
  inverted: boolean;
}

/**
 * A decoded radiograph brought to a model of input side `size` by `prepared`'s recipe: what
 * `deno task predict` and the reader page both do with the one image they are given.
 * When no hand is found, `hand.registration` is null and the set keeps the unregistered image.
 */
export async function prepareRadiograph(
  gray: GrayImage,
  male: 0 | 1,
  size: number,
  prepared: PreparedRecipe,
  id = "radiograph",
): Promise<PreparedRadiograph> {
  const stored: ImageSet = {
    size,
    ids: [id],
    images: fitSquare(gray, size, prepared.recipe.fit),
    male: new Uint8Array([male]),
    boneage: new Float32Array([NaN]),
  };
  const prep = await prepareImageSet(stored, prepared);
  return {
    set: prep.set,
    crop: preparedCrop(prep.set, 0),
    hand: prep.hands?.[0] ?? null,
    inverted: prep.inverted[0],
  };
}

/**
 * What `recipe` did to one radiograph, in words, for captions: "the hand registered upright
 * by its fingertips and wrist (a right hand, mirrored; contrast stretched …)".
 */
export function describePreparation(recipe: Recipe, prepared: PreparedRadiograph): string {
  const hand = prepared.hand;
  if (!hand?.registration) {
    return recipe.fit === "letterbox"
      ? "letterboxed (scaled to fit and padded, not stretched)"
      : "stretched to the square, not registered";
  }
  const notes = [
    hand.mirrored ? "a right hand, mirrored" : "",
    prepared.inverted ? "dark bones on light ground, inverted" : "",
    {
      none: "",
      stretch: "contrast stretched from the background to the bone",
      equalize: "contrast equalized over the hand",
    }[recipe.intensity],
  ].filter(Boolean);
  return "the hand registered upright by its fingertips and wrist" +
    (notes.length ? ` (${notes.join("; ")})` : "");
}
