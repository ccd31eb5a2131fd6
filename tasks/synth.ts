/**
 * Writes a synthetic Kaggle-layout bone-age folder.
 *
 *     deno task synth --out DIR --n N [--seed S] [--size PX]
 *
 * @module
 */
import { writeSynthDataset } from "../src/data/synth.ts";
import { createProgress } from "../src/data/progress.ts";
import { fail, numberOption, parseCommandLine, runTask, type TaskHelp } from "./cli.ts";

/** `deno task synth --help`. */
export const HELP: TaskHelp = {
  usage: "deno task synth --out DIR --n N [--seed S] [--size PX]",
  about:
    `Writes a Kaggle-layout folder (boneage-training-dataset.csv, boneage-training-dataset/<id>.png)
of N generated left-hand radiographs whose maturity follows age and sex, PX pixels square
(default 256), from seed S (default 0). Useful to try the tasks without the real data.`,
  examples: ["deno task synth --out data/synth --n 200 --size 128"],
};

/** Parses the command line, writes the folder and prints a summary. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(args, {
    out: { type: "string" },
    n: { type: "string" },
    seed: { type: "string", default: "0" },
    size: { type: "string", default: "256" },
  }, HELP);
  if (!values.out) fail(`--out is required\nusage: ${HELP.usage}`);
  if (values.n === undefined) fail(`--n is required\nusage: ${HELP.usage}`);
  const n = numberOption("n", values.n, { integer: true, min: 1, max: 1_000_000 });
  const seed = numberOption("seed", values.seed!, { integer: true, min: 0 });
  const size = numberOption("size", values.size!, { integer: true, min: 16, max: 4096 });
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

if (import.meta.main) await runTask(main);
