/**
 * The image recipe: how a bone-age checkpoint's inputs were prepared, recorded in its JSON
 * and replayed by every consumer (train, eval, predict, heatmap, tour, browser) through
 * `prepareImageSet` (`src/app/prepare.ts`), so a radiograph is always presented to the model as in training.
 *
 * 1. `fit`: how the decoded radiograph became the stored square (`letterbox` keeps the
 *    aspect; `stretch` squashes it as the 100 px RSNA copies were).
 * 2. `registration`: the hand found by a keypoint checkpoint (stored in the run folder) and
 *    moved to one pose and size (`src/app/registration.ts`); right hands are mirrored, inverted
 *    (bright background) images flipped back.
 * 3. `intensity`: `stretch` maps the background to black and the hand's bright bone to white;
 *    `equalize` maps the hand region's histogram to a uniform one.
 *
 * A checkpoint without a recipe predates it: letterboxed, unregistered, no intensity step.
 *
 * @module
 */
import type { Fit } from "./image.ts";
import { INTENSITIES, type Intensity } from "./intensity.ts";
import { DataError } from "./report.ts";

/** The points the keypoint model regresses, in output order: what registration uses. */
export const KEYPOINTS = ["middle_finger4", "thumb4", "wrist"] as const;

/**
 * Where registration puts the middle fingertip, the thumb tip and the wrist, as fractions of
 * the model's input frame. The triangle is the median shape of the 492 labelled hands of
 * `hand-keypoints` (thumb tip 0.57 of the wrist-to-fingertip length up from the wrist and
 * 0.57 of it to the side), upright, 0.70 of the frame tall, with room below the wrist for
 * the distal radius and ulna, whose growth plates matter for bone age.
 */
export const CANONICAL: readonly (readonly [number, number])[] = [
  [0.43, 0.08],
  [0.826, 0.383],
  [0.43, 0.78],
];

/** How a checkpoint's inputs are prepared. */
export interface Recipe {
  fit: Fit;
  /** The keypoint checkpoint's folder name inside the run folder, and the canonical pose. */
  registration: { keypoints: string; canonical: number[][] } | null;
  intensity: Intensity;
}

/** The recipe of checkpoints written before recipes were recorded. */
export const LEGACY_RECIPE: Recipe = Object.freeze({
  fit: "letterbox",
  registration: null,
  intensity: "none",
});

/** Folder of a registered run's keypoint checkpoint, inside the run folder. */
export const KEYPOINT_DIR = "keypoints";

/** The recipe of a new registered run. */
export function registeredRecipe(intensity: Intensity): Recipe {
  return {
    fit: "stretch",
    registration: { keypoints: KEYPOINT_DIR, canonical: CANONICAL.map((p) => [...p]) },
    intensity,
  };
}

/** Checks a checkpoint JSON's `recipe` (missing: {@link LEGACY_RECIPE}), naming the key. */
export function parseRecipe(value: unknown, path: string): Recipe {
  if (value === undefined) return LEGACY_RECIPE;
  const bad = (key: string, what: string): never => {
    throw new DataError(`recipe.${key} ${what}`, path);
  };
  const r = value as Record<string, unknown>;
  if (typeof r !== "object" || r === null) bad("", "is not an object");
  if (r.fit !== "letterbox" && r.fit !== "stretch") {
    bad("fit", `is ${JSON.stringify(r.fit)}, want "letterbox" or "stretch"`);
  }
  if (!INTENSITIES.includes(r.intensity as Intensity)) {
    bad("intensity", `is ${JSON.stringify(r.intensity)}, want one of ${INTENSITIES.join(", ")}`);
  }
  const reg = r.registration as Record<string, unknown> | null;
  if (reg !== null) {
    if (typeof reg !== "object" || reg.keypoints !== KEYPOINT_DIR) {
      bad("registration.keypoints", `is not "${KEYPOINT_DIR}" (the folder beside the weights)`);
    }
    if (JSON.stringify(reg.canonical) !== JSON.stringify(CANONICAL)) {
      bad(
        "registration.canonical",
        "differs from this version's canonical pose; retrain with deno task train --register",
      );
    }
  }
  if (r.intensity !== "none" && reg === null) {
    bad("intensity", `"${r.intensity}" needs a registration (it reads the hand region)`);
  }
  return r as unknown as Recipe;
}
