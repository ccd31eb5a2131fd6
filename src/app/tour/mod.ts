/**
 * The tour behind `deno task tour`: one training step of a bone-age network, taken apart.
 *
 * - `run.ts`: {@link runTour} takes the step with the real code and records what it did;
 * - `check.ts`: each op against its float64 twin (one table from op name to twin);
 * - `narrate.ts`: {@link formatTour} turns the result into the narrated text;
 * - `pictures.ts`: {@link saveTourImages} writes the pictures.
 *
 * `tests/tour_test.ts` checks every op the tour lists.
 *
 * @module
 */
export * from "./types.ts";
export { relativeError } from "./check.ts";
export { runTour, syntheticImage, syntheticRadiograph } from "./run.ts";
export { formatOp, formatTour, opGloss } from "./narrate.ts";
export { saveTourImages } from "./pictures.ts";
