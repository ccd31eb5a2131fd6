/**
 * Writes a synthetic Kaggle-layout bone-age folder.
 *
 *     deno task synth --out DIR --n N [--seed S] [--size PX]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { writeSynthDataset } from "../src/data/synth.ts";
import { createProgress } from "../src/data/progress.ts";

const USAGE = "usage: deno task synth --out DIR --n N [--seed S] [--size PX]";

/** Parses the command line, writes the folder and prints a summary. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: "string" },
      n: { type: "string" },
      seed: { type: "string", default: "0" },
      size: { type: "string", default: "256" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const n = Number(values.n), seed = Number(values.seed), size = Number(values.size);
  if (
    !values.out || !Number.isInteger(n) || n < 1 || !Number.isInteger(seed) ||
    !Number.isInteger(size)
  ) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const progress = createProgress("synth", n);
  const t0 = performance.now();
  const subjects = await writeSynthDataset(values.out, {
    n,
    seed,
    size,
    onProgress: () => progress.tick(),
  });
  progress.done();
  const males = subjects.filter((s) => s.male).length;
  const ages = subjects.map((s) => s.boneage);
  const mean = ages.reduce((a, b) => a + b, 0) / ages.length;
  const sd = Math.sqrt(ages.reduce((a, b) => a + (b - mean) ** 2, 0) / ages.length);
  console.log(
    `wrote ${n} images (${size}px) to ${values.out} in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    }s: ` +
      `bone age mean ${mean.toFixed(1)} SD ${sd.toFixed(1)} months, ${
        ((100 * males) / n).toFixed(1)
      }% male`,
  );
}

if (import.meta.main) await main(Deno.args);
