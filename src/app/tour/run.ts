/**
 * Running a tour: one training step with the real code (`BoneAgeNet.forward`, the L1 loss,
 * `Engine.gradients`, `Adam.step`) while it only listens: the tape entries say what each op
 * was (name, layer, geometry), the engine's dispatch hook lists every kernel launch, and a
 * gradient observer sees each entry's backward. The step is recorded like a training step and
 * submitted at once, every dispatch timed on the GPU's clock (`Engine.startProfile`).
 * Afterwards every op's inputs are read back and its float64 twin (`check.ts`) runs on them.
 *
 * @module
 */

import type { OpAttrs, TapeEntry } from "../../engine/autograd.ts";
import { type GrayImage, letterbox } from "../../data/image.ts";
import { renderHand, sampleSubject, type SynthSubject } from "../../data/synth.ts";
import { hashKey, mulberry32 } from "../../util.ts";
import { Engine, type Program } from "../../engine/engine.ts";
import { getConfig, headLayer } from "../../model/configs.ts";
import { BoneAgeNet } from "../../model/network.ts";
import { l1Loss } from "../../ops/loss.ts";
import { Adam } from "../../model/optim.ts";
import { AdamRef } from "../../ref/optim.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { compare, SOURCES, TWINS } from "./check.ts";
import {
  TOUR_AGE,
  type TourAdamExample,
  type TourCheck,
  type TourDispatch,
  type TourImage,
  type TourOp,
  type TourOptions,
  type TourParam,
  type TourPictures,
  type TourResult,
} from "./types.ts";

/**
 * A generated hand radiograph (`src/data/synth.ts`) as `deno task synth` renders it,
 * 256x256, with its subject (sex and bone-age label).
 */
export function syntheticRadiograph(
  seed = 0,
  index = 0,
): { gray: GrayImage; subject: SynthSubject; source: string } {
  const subject = sampleSubject(seed, index);
  const rand = mulberry32(parseInt(hashKey(`${seed}/${index}/render`).slice(0, 8), 16));
  const render = 256;
  const data = Uint8Array.from(
    renderHand(subject, { size: render, rand }),
    (v) => Math.round(v * 255),
  );
  return {
    gray: { width: render, height: render, data },
    subject,
    source: `generated hand (src/data/synth.ts, subject ${subject.id} of seed ${seed})`,
  };
}

/** {@link syntheticRadiograph} letterboxed to `size`: the tour's image when none is given. */
export function syntheticImage(size: number, seed = 0, index = 0): TourImage {
  const { gray, subject, source } = syntheticRadiograph(seed, index);
  return { pixels: letterbox(gray, size), size, source, subject };
}

/** One forward op as the tape recorded it, with its dispatches and its names in the text. */
interface ForwardRecord {
  entry: TapeEntry;
  op: string;
  layer: string;
  detail: string;
  attrs: OpAttrs;
  inputs: Tensor[];
  inputNames: string[];
  output: Tensor;
  outputName: string;
  first: number;
  last: number;
  flops: number;
}

interface BackwardRecord {
  forward: ForwardRecord;
  dOutput: Tensor;
  grads: (Tensor | null)[];
  first: number;
  last: number;
}

interface RecordedStep {
  forward: ForwardRecord[];
  backward: BackwardRecord[];
  pred: Tensor;
  loss: Tensor;
  grads: Map<Tensor, Tensor>;
  updateFirst: number;
  updateLast: number;
}

/** The dispatches recorded so far, and how many tape entries there were at each. */
interface DispatchLog {
  programs: Program[];
  tapeLengths: number[];
}

/** Names of activations in the text, by the layer that made them (default: "<layer> out"). */
const OUTPUT_NAMES: Record<string, string> = {
  pool: "features",
  flatten: "features",
  sex: "features+sex",
  loss: "loss",
};

/**
 * One training step as `src/app/training.ts` takes it: the model's own `forward`, the loss,
 * `Engine.gradients` and `Adam.step`. The tape says what each op was and in which layer;
 * the dispatch log says which dispatches each op recorded (forward ops dispatch before they
 * record their entry, so the dispatches made while the tape holds `i` entries are entry
 * `i`'s); the gradient observer marks where each entry's backward ends.
 */
function recordStep(
  e: Engine,
  model: BoneAgeNet,
  optimizer: Adam,
  x: Tensor,
  male: Tensor,
  target: Tensor,
  log: DispatchLog,
): RecordedStep {
  if (model.config.dropout > 0) {
    throw new Error(
      `tour: the ${model.config.name} model uses dropout, which the tour does not model`,
    );
  }
  if (e.tape.entries.length > 0) throw new Error("tour: the tape must start empty");
  const count = () => log.programs.length;
  const start = count();
  const pred = model.forward(x, male, true);
  const loss = l1Loss(pred, target);
  const entries = [...e.tape.entries];
  const end = count();
  const firstDispatch = (i: number) => {
    for (let k = start; k < end; k++) if (log.tapeLengths[k] >= i) return k;
    return end;
  };

  const names = new Map<Tensor, string>([[x, "image"], [male, "male"], [target, "target"]]);
  const forward = entries.map((entry, i): ForwardRecord => {
    const layer = entry.layer ?? "loss";
    const outputName = OUTPUT_NAMES[layer] ?? `${layer} out`;
    const inputNames = entry.op === "l1Loss"
      ? ["prediction", "target"]
      : entry.inputs.map((t) => names.get(t) ?? t.name ?? "?");
    names.set(entry.output, outputName);
    const twin = TWINS[entry.op];
    if (!twin) throw new Error(`tour: no float64 twin for the op ${entry.op} (${layer})`);
    return {
      entry,
      op: entry.op,
      layer,
      detail: twin.detail(entry, entry.output === pred),
      attrs: entry.attrs,
      inputs: entry.inputs,
      inputNames,
      output: entry.output,
      outputName,
      first: firstDispatch(i),
      last: firstDispatch(i + 1),
      flops: twin.flops?.(entry.attrs) ?? 0,
    };
  });

  const byEntry = new Map(forward.map((r) => [r.entry, r]));
  const backward: BackwardRecord[] = [];
  let first = count();
  const grads = e.gradients(loss, [...model.parameters(), x], undefined, (entry, dOutput, dx) => {
    backward.push({ forward: byEntry.get(entry)!, dOutput, grads: [...dx], first, last: count() });
    first = count();
  });
  const updateFirst = count();
  optimizer.step(new Map(model.parameters().map((p) => [p, grads.get(p)!])));
  return { forward, backward, pred, loss, grads, updateFirst, updateLast: count() };
}

/** Every tensor inside a recorded step, for disposing it. */
function stepTensors(step: RecordedStep): Set<Tensor> {
  const all = new Set<Tensor>([step.pred, step.loss, ...step.grads.values()]);
  for (const r of step.forward) all.add(r.output);
  for (const r of step.backward) {
    all.add(r.dOutput);
    r.grads.forEach((g) => g && all.add(g));
  }
  return all;
}

function meanStd(pixels: Uint8Array): { mean: number; std: number } {
  let sum = 0, sq = 0;
  for (const p of pixels) {
    sum += p / 255;
    sq += (p / 255) ** 2;
  }
  const mean = sum / pixels.length;
  const std = Math.sqrt(Math.max(0, sq / pixels.length - mean * mean));
  return { mean, std: std > 1e-6 ? std : 1 };
}

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

/**
 * Runs one training step of `options.config` (default `small`) on one radiograph with a batch
 * of one, narrating nothing: returns every op with its kernels, dispatch sizes, GPU times and
 * the comparison with its float64 twin, plus the loss, gradient norms, an Adam example and
 * the prediction before and after. See the module doc.
 */
export async function runTour(options: TourOptions = {}): Promise<TourResult> {
  const config = getConfig(options.config ?? "small");
  if (config.inputHeight !== config.inputWidth) {
    throw new Error(`tour: the ${config.name} model's input is not square`);
  }
  const size = config.inputHeight;
  const image = options.image ?? syntheticImage(size);
  if (image.size !== size || image.pixels.length !== size * size) {
    throw new Error(
      `tour: the image is ${image.size}x${image.size}, the model wants ${size}x${size}`,
    );
  }
  const male = options.male ?? image.subject?.male;
  if (male === undefined) throw new Error("tour: the child's sex is needed for a real image");
  const targetMonths = options.targetMonths ?? image.subject?.boneage ?? TOUR_AGE.mean;
  const lr = options.lr ?? 0.002;
  const seed = options.seed ?? 1;
  const warmup = options.warmup ?? true;
  const ownEngine = !options.engine;
  const e = options.engine ?? await Engine.create();
  const owned: Tensor[] = [];
  const cleanup: (() => void)[] = [];
  try {
    const { mean: pixelMean, std: pixelStd } = meanStd(image.pixels);
    const input = Float32Array.from(image.pixels, (p) => (p / 255 - pixelMean) / pixelStd);
    const targetNorm = (targetMonths - TOUR_AGE.mean) / TOUR_AGE.sd;
    const x = e.tensor(input, [1, size, size, 1], "image");
    x.requiresGrad = true; // so backward computes dL/d(image), for the saliency picture
    const maleT = e.tensor([male], [1, 1], "male");
    const target = e.tensor([targetNorm], [1, 1], "target");
    owned.push(x, maleT, target);

    // Programs as they are recorded (works with or without timestamp queries).
    const log: DispatchLog = { programs: [], tapeLengths: [] };
    const programs = log.programs;
    e.onDispatch = (program) => {
      programs.push(program);
      log.tapeLengths.push(e.tape.entries.length);
    };

    if (warmup) {
      const spare = new BoneAgeNet(e, config, seed + 1);
      const spareAdam = new Adam(e, spare.parameters(), { lr });
      const s = e.tidy(() => recordStep(e, spare, spareAdam, x, maleT, target, log));
      stepTensors(s).forEach((t) => t.dispose());
      spareAdam.dispose();
      spare.namedTensors().forEach((n) => n.tensor.dispose());
      await e.sync();
    }

    const model = new BoneAgeNet(e, config, seed);
    const optimizer = new Adam(e, model.parameters(), { lr });
    cleanup.push(() => {
      optimizer.dispose();
      model.namedTensors().forEach((n) => n.tensor.dispose());
    });
    const before = new Map<Tensor, Float64Array>();
    for (const { tensor } of model.namedTensors()) {
      before.set(tensor, Float64Array.from(await tensor.read()));
    }
    const profiling = e.device.features.has("timestamp-query");
    programs.length = 0;
    log.tapeLengths.length = 0;
    const submits0 = e.stats.submits;
    if (profiling) e.startProfile();
    const step = e.tidy(() => recordStep(e, model, optimizer, x, maleT, target, log));
    // Submits the step (stopProfile adds the copy of the timestamps to the same submit).
    const timed = profiling ? await e.stopProfile() : (e.flush(), null);
    const submits = e.stats.submits - submits0;
    e.onDispatch = null;
    await e.sync();
    if (timed && timed.length !== programs.length) {
      throw new Error(`tour: ${timed.length} timed dispatches for ${programs.length} recorded`);
    }
    owned.push(...stepTensors(step));

    const cache = new Map<Tensor, Float64Array>();
    const value = async (t: Tensor) => {
      let v = before.get(t) ?? cache.get(t);
      if (!v) cache.set(t, v = Float64Array.from(await t.read()));
      return v;
    };
    const dispatches = (first: number, last: number): TourDispatch[] =>
      programs.slice(first, last).map((p, k) => {
        const workgroups = [p.dispatch[0], p.dispatch[1] ?? 1, p.dispatch[2] ?? 1] as [
          number,
          number,
          number,
        ];
        const workgroupSize = e.workgroupSize(p);
        return {
          kernel: p.kernel,
          entryPoint: p.entryPoint ?? "main",
          workgroups,
          workgroupSize,
          invocations: workgroups.reduce((a, b) => a * b, 1) *
            workgroupSize.reduce((a, b) => a * b, 1),
          ms: timed ? timed[first + k].ms : null,
        };
      });
    const sumMs = (ds: TourDispatch[]) => (timed ? ds.reduce((a, d) => a + d.ms!, 0) : null);
    const shapeOf = (t: Tensor) => [...t.shape];
    // What a forward op and its backward share: the op, its layer and where its code lives.
    const about = (r: ForwardRecord) => ({
      op: r.op,
      layer: r.layer,
      detail: r.detail,
      source: SOURCES[r.op][0],
      refSource: SOURCES[r.op][1],
    });
    const ops: TourOp[] = [];

    for (const r of step.forward) {
      const inputs = await Promise.all(r.inputs.map(value));
      const want = TWINS[r.op].forward(r.attrs, inputs);
      const got = await value(r.output);
      const ds = dispatches(r.first, r.last);
      ops.push({
        stage: "forward",
        ...about(r),
        inputs: r.inputs.map((t, i) => ({ name: r.inputNames[i], shape: shapeOf(t) })),
        outputs: [{ name: r.outputName, shape: shapeOf(r.output) }],
        dispatches: ds,
        flops: r.flops || null,
        bytes: 4 * (r.inputs.reduce((a, t) => a + t.size, 0) + r.output.size),
        ms: sumMs(ds),
        checks: [compare(r.outputName, r.output.shape, got, want)],
      });
    }
    for (const b of step.backward) {
      const r = b.forward;
      const inputs = await Promise.all(r.inputs.map(value));
      const dy = await value(b.dOutput);
      const needs = b.grads.map((g) => g !== null);
      const want = TWINS[r.op].backward(r.attrs, inputs, dy, needs);
      const checks: TourCheck[] = [];
      const outputs: TourOp["outputs"] = [];
      for (let i = 0; i < b.grads.length; i++) {
        const g = b.grads[i];
        if (!g) continue;
        const name = `dL/d(${r.inputNames[i]})`;
        outputs.push({ name, shape: shapeOf(g) });
        checks.push(compare(name, g.shape, await value(g), want[i]!));
      }
      // Both gradients of a conv or linear layer cost its forward's FLOPs each.
      const flops = r.op === "conv2d" || r.op === "linear" ? r.flops * (needs[0] ? 2 : 1) : null;
      const ds = dispatches(b.first, b.last);
      ops.push({
        stage: "backward",
        ...about(r),
        inputs: [
          { name: `dL/d(${r.outputName})`, shape: shapeOf(b.dOutput) },
          ...r.inputs.map((t, i) => ({ name: r.inputNames[i], shape: shapeOf(t) }))
            .filter((_, i) => r.op !== "l1Loss" || i === 0),
        ],
        outputs,
        dispatches: ds,
        flops,
        bytes: 4 * (b.dOutput.size + r.inputs.reduce((a, t) => a + t.size, 0) +
          b.grads.reduce((a, g) => a + (g?.size ?? 0), 0)),
        ms: sumMs(ds),
        checks,
      });
    }

    // The update: every parameter against a float64 Adam fed the GPU's gradients.
    const params: TourParam[] = [];
    const adamChecks: TourCheck[] = [];
    let example: TourAdamExample | null = null;
    const outName = `${headLayer(config, config.dense.length)}.weight`;
    for (const p of model.parameters()) {
      const g = await value(step.grads.get(p)!);
      const w0 = before.get(p)!;
      const after = Float64Array.from(await p.read());
      const adamRef = new AdamRef([w0], { lr });
      adamRef.step([g]);
      adamChecks.push(compare(p.name!, p.shape, after, adamRef.params[0]));
      const delta = after.map((v, i) => v - w0[i]);
      params.push({
        name: p.name!,
        shape: shapeOf(p),
        gradNorm: norm(g),
        weightNorm: norm(w0),
        updateNorm: norm(delta),
      });
      if (p.name === outName) {
        let k = 0;
        for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[k])) k = i;
        example = {
          name: p.name,
          index: k,
          before: w0[k],
          grad: g[k],
          after: after[k],
          afterRef: adamRef.params[0][k],
          lr,
        };
      }
    }
    const upd = dispatches(step.updateFirst, step.updateLast);
    const totalParams = model.parameters().reduce((a, p) => a + p.size, 0);
    ops.push({
      stage: "update",
      op: "adam",
      layer: "all parameters",
      detail: `lr ${lr}, one dispatch per parameter tensor`,
      source: SOURCES.adam[0],
      refSource: SOURCES.adam[1],
      inputs: [{ name: "gradients", shape: [totalParams] }],
      outputs: [{ name: "parameters, m, v (in place)", shape: [totalParams] }],
      dispatches: upd,
      flops: null,
      bytes: 4 * 6 * totalParams,
      ms: sumMs(upd),
      checks: adamChecks,
    });

    const loss = (await step.loss.read())[0];
    const lossOp = ops.find((o) => o.stage === "forward" && o.op === "l1Loss")!;
    const predBefore = (await step.pred.read())[0];
    const after = e.noGrad(() => e.tidy(() => model.forward(x, maleT, true)));
    const predAfter = (await after.read())[0];
    after.dispose();

    const featureOf = async (layer: string) => {
      const r = step.forward.find((f) => f.layer === layer)!;
      const [, h, w, c] = r.output.shape;
      return { layer, h, w, c, data: Float32Array.from(await value(r.output)) };
    };
    // The last ReLU before each max-pool: the first block's and the last block's.
    const poolAt = config.trunk.flatMap((s, i) => (s.type === "maxpool" ? [i] : []));
    const features = [];
    for (const i of [poolAt[0], poolAt[poolAt.length - 1]]) {
      if (i !== undefined && i > 0) features.push(await featureOf(`trunk.${i - 1}`));
    }
    const inputGrad = step.grads.get(x);
    const pictures: TourPictures = {
      size,
      input,
      inputGrad: inputGrad ? await inputGrad.read() : new Float32Array(size * size),
      features,
    };

    return {
      adapter: e.info.description,
      cpuAdapter: e.info.isFallback,
      kernels: e.kernels,
      config,
      parameterCount: totalParams,
      source: image.source,
      male,
      pixelMean,
      pixelStd,
      targetMonths,
      lr,
      warmedUp: warmup,
      ops,
      loss,
      lossRef: lossOp.checks[0].ref[0],
      monthsBefore: TOUR_AGE.mean + TOUR_AGE.sd * predBefore,
      monthsAfter: TOUR_AGE.mean + TOUR_AGE.sd * predAfter,
      params,
      adam: example!,
      submits,
      dispatchCount: programs.length,
      pictures,
    };
  } finally {
    e.onDispatch = null;
    if (ownEngine) e.destroy();
    else {
      owned.forEach((t) => t.dispose());
      cleanup.forEach((f) => f());
    }
  }
}
