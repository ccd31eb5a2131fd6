/**
 * Shared test helpers: one engine per test file (outputs pre-filled with NaN), seeded random
 * inputs, and the GPU-vs-reference comparison.
 *
 * @module
 */
import { requestGpu } from "../src/engine/device.ts";
import { Engine, type KernelPolicy } from "../src/engine/engine.ts";
import { mulberry32 } from "../src/util.ts";
import type { Shape, Tensor } from "../src/engine/tensor.ts";
import { sizeOf } from "../src/engine/tensor.ts";

let device: ReturnType<typeof requestGpu> | null = null;
const shared = new Map<KernelPolicy, Promise<Engine>>();

/**
 * The engine shared by the tests of one file, with NaN-filled outputs; one per kernel
 * policy (on one device), so a test can run the same case under each.
 */
export function testEngine(kernels: KernelPolicy = "auto"): Promise<Engine> {
  device ??= requestGpu();
  if (!shared.has(kernels)) {
    shared.set(
      kernels,
      device.then((gpu) => Engine.create({ gpu, kernels, fillOutputsWithNaN: true })),
    );
  }
  return shared.get(kernels)!;
}

/** `Deno.test` without the resource sanitizers (GPU objects outlive a test by design). */
export function gpuTest(name: string, fn: (e: Engine) => Promise<void> | void): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => fn(await testEngine()),
  });
}

/** Deterministic PRNG (mulberry32) returning floats in [0, 1). */
export { mulberry32 as rng } from "../src/util.ts";

/** Throws unless `fn` throws an error whose message contains every one of `parts`. */
export function throwsWith(fn: () => unknown, ...parts: string[]): void {
  let message = "";
  try {
    fn();
  } catch (err) {
    message = (err as Error).message;
  }
  if (!parts.every((p) => message.includes(p))) {
    throw new Error(`expected an error mentioning ${parts.join(", ")}; got "${message}"`);
  }
}

/**
 * The gradients an op's output `y` sends to `inputs` when `dy` flows into it: the engine's
 * own backward pass seeded with `dy` (it clears the tape). Inputs that do not require a
 * gradient get null.
 */
export function backwardOf(
  e: Engine,
  y: Tensor,
  dy: Tensor,
  inputs: readonly Tensor[],
): (Tensor | null)[] {
  const grads = e.gradients(y, inputs.filter((t) => t.requiresGrad), dy);
  return inputs.map((t) => grads.get(t) ?? null);
}

/** Uniform random values in [lo, hi), never exactly zero. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = mulberry32(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v = lo + (hi - lo) * r();
    if (v === 0) v = 1e-3;
    out[i] = v;
  }
  return out;
}

/** Random tensor plus the same values as float64 for the reference. */
export function randomTensor(
  e: Engine,
  shape: Shape,
  seed: number,
  lo = -1,
  hi = 1,
): { t: Tensor; ref: Float64Array } {
  const ref = randomArray(sizeOf(shape), seed, lo, hi);
  // The reference must see exactly the f32 values the GPU sees.
  const f32 = Float32Array.from(ref);
  return { t: e.tensor(f32, shape), ref: Float64Array.from(f32) };
}

/**
 * Normwise relative error `max|got - want| / max|want|`. NaN anywhere in `got` (an element
 * the kernel never wrote) gives Infinity.
 */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    if (!Number.isFinite(got[i])) return Infinity;
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

/** Throws unless `relError(got, want) <= tol`, naming `what`. */
export function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  what: string,
  tol = 1e-4,
): void {
  const err = relError(got, want);
  if (!(err <= tol)) {
    let worst = 0;
    for (let i = 0; i < got.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= Math.abs(got[worst] - want[worst]))) worst = i;
    }
    throw new Error(
      `${what}: relative error ${err.toExponential(2)} > ${tol} ` +
        `(element ${worst}: got ${got[worst]}, want ${want[worst]})`,
    );
  }
}

/** The project's root folder (where `deno.json` is). */
export const PROJECT_ROOT = new URL("../", import.meta.url).pathname;

/**
 * The `deno run` arguments of a task exactly as `deno.json` defines them (its permissions,
 * its lock file, its script), with write access to `extraWrite` added, so tests exercise the
 * same permissions a user's `deno task NAME` gets.
 */
export function taskRunArgs(name: string, extraWrite: readonly string[] = []): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${PROJECT_ROOT}deno.json`));
  const command: string | undefined = config.tasks?.[name]?.command;
  if (!command) throw new Error(`deno.json has no task "${name}"`);
  const words = command.split("&&").at(-1)!.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") throw new Error(`${name} is not a deno run task`);
  return words.slice(1).map((w) =>
    w.startsWith("--allow-write=") && extraWrite.length ? `${w},${extraWrite.join(",")}` : w
  );
}

/** What a finished subprocess printed. */
export interface TaskRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno ARGS` in `cwd` to the end, with what it printed. */
export async function runDeno(args: readonly string[], cwd = PROJECT_ROOT): Promise<TaskRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs task `name` as `deno task` would (see {@link taskRunArgs}) from the project root. */
export function runTaskProcess(
  name: string,
  args: readonly string[],
  extraWrite: readonly string[] = [],
): Promise<TaskRun> {
  return runDeno([...taskRunArgs(name, extraWrite), ...args]);
}
