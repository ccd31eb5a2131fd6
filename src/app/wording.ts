/**
 * The words of an estimate, shared by `deno task predict` and the browser page so both say
 * the same thing.
 *
 * @module
 */

/** The notice shown with every estimate. */
export const NOT_A_DEVICE = "Research software, not a medical device: do not use it for diagnosis.";

/** `"10 years 4 months"` for 124 months. */
export function yearsAndMonths(months: number): string {
  const total = Math.round(months);
  const y = Math.floor(total / 12), m = total % 12;
  return `${y} year${y === 1 ? "" : "s"} ${m} month${m === 1 ? "" : "s"}`;
}

/** How the bone age compares with the chronological age (the CLI's `--age` line, in words). */
export function describeDifference(
  months: number,
  age: number,
  uncertainty: number,
): { difference: number; text: string } {
  const difference = months - age;
  const size = Math.abs(difference).toFixed(1);
  const word = Math.abs(difference) < 0.5
    ? "matches it"
    : `is ${difference > 0 ? "advanced" : "delayed"} by ${size} months`;
  const typical = Number.isFinite(uncertainty)
    ? Math.abs(difference) <= uncertainty
      ? ", within the model's typical error."
      : `, more than the model's typical error of ${uncertainty.toFixed(1)} months.`
    : ".";
  return { difference, text: `Bone age ${word}${typical}` };
}
