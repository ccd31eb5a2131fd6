/**
 * Checkpoints: weights in safetensors with PyTorch's layouts (conv `[out, in, kh, kw]`,
 * linear `[out, in]`), plus a JSON file with everything else needed to continue or to
 * predict: config, normalization statistics, epoch, validation MAE and optimizer state.
 * Writes go to a temporary file first and are renamed into place, so a crash or Ctrl-C
 * never leaves a half-written checkpoint.
 *
 * @module
 */
import type { ModelConfig } from "./models.ts";
import type { BoneAgeNet } from "./nn.ts";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "./safetensors.ts";

/** Intensity and target statistics of the training split, stored with the model. */
export interface Normalization {
  /** Mean of training pixels scaled to [0, 1]. */
  pixelMean: number;
  /** Standard deviation of training pixels scaled to [0, 1]. */
  pixelStd: number;
  /** Mean bone age of the training split, months. */
  ageMean: number;
  /** Standard deviation of the training split's bone age, months. */
  ageStd: number;
}

/** The JSON half of a checkpoint. */
export interface CheckpointMeta {
  /** Format version of this JSON. */
  format: 1;
  /** The model configuration (stored whole, so a renamed config still loads). */
  config: ModelConfig;
  /** Normalization statistics of the training split. */
  normalization: Normalization;
  /** Completed epochs. */
  epoch: number;
  /** Steps done inside `epoch` (non-zero only when a run was interrupted mid-epoch). */
  stepInEpoch: number;
  /** Optimizer steps so far. */
  globalStep: number;
  /** Validation MAE in months after `epoch` (NaN before the first validation). */
  valMae: number;
  /** Best validation MAE so far in this run. */
  bestValMae: number;
  /** Seconds of training (steps, validation, checkpoints) so far, over all resumed parts. */
  trainSeconds?: number;
  /** The command-line settings of the run (seed, lr, batch, epochs ...). */
  settings: Record<string, unknown>;
}

/** Converts one of our tensors to PyTorch's layout for the same parameter. */
function toTorchLayout(name: string, shape: readonly number[], data: Float32Array): NamedArray {
  if (shape.length === 4) {
    // ours [KH, KW, Cin, Cout] -> torch [Cout, Cin, KH, KW]
    const [kh, kw, cin, cout] = shape;
    const out = new Float32Array(data.length);
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        for (let i = 0; i < cin; i++) {
          for (let o = 0; o < cout; o++) {
            out[((o * cin + i) * kh + y) * kw + x] = data[((y * kw + x) * cin + i) * cout + o];
          }
        }
      }
    }
    return { shape: [cout, cin, kh, kw], data: out };
  }
  if (shape.length === 2 && name.endsWith(".weight")) {
    const [inF, outF] = shape; // ours [In, Out] -> torch [Out, In]
    const out = new Float32Array(data.length);
    for (let i = 0; i < inF; i++) {
      for (let o = 0; o < outF; o++) out[o * inF + i] = data[i * outF + o];
    }
    return { shape: [outF, inF], data: out };
  }
  return { shape: [...shape], data };
}

/** The inverse of {@link toTorchLayout}, given our shape. */
function fromTorchLayout(shape: readonly number[], a: NamedArray): Float32Array {
  if (shape.length === 4) {
    const [kh, kw, cin, cout] = shape;
    const out = new Float32Array(a.data.length);
    for (let y = 0; y < kh; y++) {
      for (let x = 0; x < kw; x++) {
        for (let i = 0; i < cin; i++) {
          for (let o = 0; o < cout; o++) {
            out[((y * kw + x) * cin + i) * cout + o] = a.data[((o * cin + i) * kh + y) * kw + x];
          }
        }
      }
    }
    return out;
  }
  if (shape.length === 2 && a.shape.length === 2) {
    const [inF, outF] = shape;
    const out = new Float32Array(a.data.length);
    for (let i = 0; i < inF; i++) {
      for (let o = 0; o < outF; o++) out[i * outF + o] = a.data[o * inF + i];
    }
    return out;
  }
  return a.data;
}

/** The PyTorch-layout shape of one of our tensors (for mismatch messages). */
function torchShape(shape: readonly number[]): number[] {
  if (shape.length === 4) return [shape[3], shape[2], shape[0], shape[1]];
  if (shape.length === 2) return [shape[1], shape[0]];
  return [...shape];
}

/** Writes `bytes` to `path` atomically (temp file in the same folder, then rename). */
export async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  if (typeof bytes === "string") await Deno.writeTextFile(tmp, bytes);
  else await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

/** Serializes the model's tensors (and extra arrays, e.g. optimizer state) to safetensors. */
export async function modelToSafetensors(
  model: BoneAgeNet,
  metadata: Record<string, string>,
): Promise<Uint8Array> {
  const tensors = new Map<string, NamedArray>();
  for (const { name, tensor } of model.namedTensors()) {
    tensors.set(name, toTorchLayout(name, tensor.shape, await tensor.read()));
  }
  return encodeSafetensors(tensors, metadata);
}

/**
 * Loads safetensors weights into `model`. Throws, naming the file, when a tensor is missing,
 * extra, or has another shape (a checkpoint of a different configuration).
 */
export function loadModelWeights(model: BoneAgeNet, bytes: Uint8Array, source: string): void {
  const { tensors } = decodeSafetensors(bytes, source);
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const { name, tensor } of model.namedTensors()) {
    expected.add(name);
    const found = tensors.get(name);
    const want = torchShape(tensor.shape);
    if (!found) problems.push(`missing ${name} [${want}]`);
    else if (found.shape.join() !== want.join()) {
      problems.push(
        `${name} is [${found.shape}] in the file but [${want}] in the ${model.config.name} model`,
      );
    }
  }
  for (const name of tensors.keys()) if (!expected.has(name)) problems.push(`unexpected ${name}`);
  if (problems.length) {
    throw new Error(
      `${source} does not match the "${model.config.name}" model: ${
        problems.slice(0, 5).join("; ")
      }` +
        (problems.length > 5 ? `; and ${problems.length - 5} more` : ""),
    );
  }
  for (const { name, tensor } of model.namedTensors()) {
    model.engine.write(tensor, fromTorchLayout(tensor.shape, tensors.get(name)!));
  }
}
