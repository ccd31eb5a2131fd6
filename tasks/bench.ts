/**
 * `deno task bench [--json] [--quick]`: our kernels and training step against the JavaScript
 * peers (TensorFlow.js's WebGPU backend and jax-js) on the same adapter, in one process.
 *
 * Prints Markdown tables (paste them into BENCHMARKS.md); with `--json` the last line of
 * stdout is one JSON object. `--quick` skips the `paper` model's shapes and times the peers'
 * training steps once.
 *
 * @module
 */
import { type ConvPass, timeConv } from "../src/app/bench/conv.ts";
import { convFlops, type ConvGeometry } from "../src/ops/geometry.ts";
import { measurePeakGflops } from "../src/app/bench/peak.ts";
import { randomTensor, timeRecorded } from "../src/app/bench/timing.ts";
import * as jaxjs from "../src/app/bench/peers/jaxjs.ts";
import * as tfjs from "../src/app/bench/peers/tfjs.ts";
import { Engine } from "../src/engine/engine.ts";
import { getConfig, type ModelConfig, planLayers } from "../src/model/configs.ts";
import { BoneAgeNet } from "../src/model/network.ts";
import { batchNorm2d } from "../src/ops/batchnorm.ts";
import { l1Loss } from "../src/ops/loss.ts";
import { maxPool2d } from "../src/ops/pool.ts";
import { Adam } from "../src/model/optim.ts";
import { kernelsOption, parseCommandLine, runTask, type TaskHelp } from "./cli.ts";

/** `deno task bench --help`. */
export const HELP: TaskHelp = {
  usage: "deno task bench [--quick] [--json] [--kernels auto|rows|generic]",
  about: `Times our kernels and the training step against TensorFlow.js (WebGPU backend) and jax-js
on this adapter, in one process, and prints Markdown tables (see BENCHMARKS.md). --quick
leaves out the paper model's shapes and times the peers' training steps once; --json prints
one JSON object as the last line. --kernels picks our convolution kernels (default auto: rows
on a CPU adapter, generic on a GPU).`,
  examples: ["deno task bench --quick"],
};

/** One row of the kernel table. */
interface KernelRow {
  name: string;
  shape: string;
  ours_ms: number;
  ours_gflops: number | null;
  ours_gbs: number | null;
  pct_peak: number | null;
  tfjs_ms: number | null;
  jaxjs_ms: number | null;
  tfjs_gflops: number | null;
  jaxjs_gflops: number | null;
  speedup: number | null;
}

type Peer = typeof tfjs | typeof jaxjs;

/** The conv layers of `config` at batch `n`, in order. */
const convLayers = (config: ModelConfig, n: number): ConvGeometry[] =>
  planLayers(config, n).flatMap((l) => (l.spec.type === "conv" ? [l.window!] : []));

const showConv = (g: ConvGeometry) => `${g.N}x${g.H}x${g.W}x${g.Cin}→${g.Cout} k${g.KH}`;

/** A random tensor that outlives the timing scopes. */
const random = (e: Engine, shape: number[], seed: number) => e.keep(randomTensor(e, shape, seed));

/** Runs a peer measurement, turning a failure into null with a note on stderr. */
async function peerTime(
  name: string,
  what: string,
  fn: () => Promise<number>,
): Promise<number | null> {
  try {
    return await fn();
  } catch (err) {
    console.error(`${name}: ${what} failed: ${(err as Error).message.split("\n")[0]}`);
    return null;
  }
}

async function main(args: string[]): Promise<void> {
  const { values } = parseCommandLine(args, {
    json: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
    kernels: { type: "string", default: "auto" },
  }, HELP);
  const quick = values.quick!;
  const say = (s: string) => values.json ? console.error(s) : console.log(s);
  const e = await Engine.create({ kernels: kernelsOption(values.kernels!) });
  say(
    `# Benchmark — ${e.info.description}${e.info.isFallback ? " (CPU-backed adapter)" : ""}, ` +
      `${e.kernels} convolution kernels`,
  );
  say(`${new Date().toISOString().slice(0, 10)}, \`deno task bench${quick ? " --quick" : ""}\`\n`);

  const peak = await measurePeakGflops(e);
  say(`FMA peak: **${peak.toFixed(1)} GFLOP/s** (kernels/fma_peak.wgsl)\n`);

  const peers: [string, Peer | null][] = [];
  for (const [name, peer] of [["tfjs", tfjs], ["jaxjs", jaxjs]] as const) {
    try {
      await peer.setup();
      peers.push([name, peer]);
    } catch (err) {
      console.error(`${name}: unavailable: ${(err as Error).message}`);
      peers.push([name, null]);
    }
  }
  const [tf, jx] = peers.map(([, p]) => p);
  const peerReps = quick ? 1 : 2;

  const rows: KernelRow[] = [];
  const row = (
    name: string,
    shape: string,
    ours: number,
    work: { flops?: number; bytes?: number },
    tfMs: number | null,
    jxMs: number | null,
  ) => {
    const rate = (ms: number | null) => (ms && work.flops ? work.flops / ms / 1e6 : null);
    const faster = Math.min(tfMs ?? Infinity, jxMs ?? Infinity);
    const r: KernelRow = {
      name,
      shape,
      ours_ms: ours,
      ours_gflops: rate(ours),
      ours_gbs: work.bytes ? work.bytes / ours / 1e6 : null,
      pct_peak: work.flops ? (100 * rate(ours)!) / peak : null,
      tfjs_ms: tfMs,
      jaxjs_ms: jxMs,
      tfjs_gflops: rate(tfMs),
      jaxjs_gflops: rate(jxMs),
      speedup: Number.isFinite(faster) ? faster / ours : null,
    };
    rows.push(r);
    console.error(
      `  ${name} ${shape}: ${ours.toFixed(2)} ms` +
        (r.ours_gflops ? ` ${r.ours_gflops.toFixed(1)} GFLOP/s` : ""),
    );
  };

  const models: [string, ConvGeometry[]][] = [["small", convLayers(getConfig("small"), 32)]];
  if (!quick) models.push(["paper", convLayers(getConfig("paper"), 4)]);
  for (const [model, shapes] of models) {
    for (const s of shapes) {
      for (const pass of ["forward", "backwardData", "backwardWeight"] as ConvPass[]) {
        if (pass === "backwardData" && s.Cin === 1) continue; // the image needs no gradient
        const ours = (await timeConv(e, s, pass, { repeats: 3, runs: 3 })).ms;
        const reps = model === "paper" ? 1 : peerReps;
        row(
          `conv2d ${pass}`,
          `${model}: ${showConv(s)}`,
          ours,
          { flops: convFlops(s) },
          tf ? await peerTime("tfjs", `conv ${pass}`, () => tf.timeConv2d(s, pass, reps)) : null,
          jx ? await peerTime("jaxjs", `conv ${pass}`, () => jx.timeConv2d(s, pass, reps)) : null,
        );
      }
    }
  }

  // Memory-bound kernels on the small model's largest activation.
  const map = { n: 32, h: 96, w: 96, c: 16 };
  const mapShape = [map.n, map.h, map.w, map.c];
  const mapBytes = map.n * map.h * map.w * map.c * 4;
  const x = random(e, mapShape, 1);
  row(
    "maxpool2d forward",
    "32x96x96x16 k2 s2",
    await timeRecorded(e, () => maxPool2d(x, { kernel: 2, stride: 2 })),
    {
      bytes: mapBytes * 1.25,
    },
    tf ? await peerTime("tfjs", "maxpool", () => tf.timeMaxPool(map, "forward", 3)) : null,
    jx ? await peerTime("jaxjs", "maxpool", () => jx.timeMaxPool(map, "forward", 3)) : null,
  );
  x.requiresGrad = true;
  const pooled = maxPool2d(x, { kernel: 2, stride: 2 });
  const poolEntry = e.tape.entries.at(-1)!;
  e.tape.entries.length = 0;
  const dPooled = random(e, pooled.shape as number[], 2);
  row(
    "maxpool2d backward",
    "32x96x96x16 k2 s2",
    await timeRecorded(e, () => poolEntry.backward(dPooled, [true])),
    {
      bytes: mapBytes * 1.5,
    },
    tf ? await peerTime("tfjs", "maxpool bwd", () => tf.timeMaxPool(map, "backward", 3)) : null,
    jx ? await peerTime("jaxjs", "maxpool bwd", () => jx.timeMaxPool(map, "backward", 3)) : null,
  );
  x.requiresGrad = false;
  const gamma = random(e, [16], 3), beta = random(e, [16], 4);
  const running = { mean: random(e, [16], 5), variance: e.keep(e.full([16], 1)) };
  row(
    "batchnorm2d forward (train)",
    "32x96x96x16",
    await timeRecorded(e, () => batchNorm2d(x, gamma, beta, running, { training: true })),
    {
      bytes: mapBytes * 4,
    },
    tf ? await peerTime("tfjs", "batchnorm", () => tf.timeBatchNorm(map, 3)) : null,
    jx ? await peerTime("jaxjs", "batchnorm", () => jx.timeBatchNorm(map, 3)) : null,
  );

  // Training step of the small model at batch 32.
  const config = getConfig("small");
  const B = 32;
  const net = new BoneAgeNet(e, config, 1);
  const params = net.parameters();
  const opt = new Adam(e, params, { lr: 1e-3 });
  const paramCount = params.reduce((s, p) => s + p.size, 0);
  const grads = new Map(params.map((p, i) => [p, random(e, p.shape as number[], 10 + i)]));
  row(
    "adam update",
    `${paramCount} params`,
    await timeRecorded(e, () => opt.step(grads, 1e-4)),
    {
      bytes: paramCount * 4 * 7,
    },
    tf ? await peerTime("tfjs", "adam", () => tf.timeAdam(paramCount, 3)) : null,
    jx ? await peerTime("jaxjs", "adam", () => jx.timeAdam(paramCount, 3)) : null,
  );

  const images = random(e, [B, 96, 96, 1], 20);
  const male = e.keep(e.tensor(Float32Array.from({ length: B }, (_, i) => i % 2), [B, 1]));
  const target = random(e, [B, 1], 21);
  let stepCount = 0;
  const step = () => {
    const loss = l1Loss(net.forward(images, male, true, stepCount++), target);
    opt.step(e.gradients(loss, params), 1e-4);
  };
  const submitsBefore = e.stats.submits;
  const oursStep = await timeRecorded(e, step, { repeats: 3, runs: 3 });
  const submitsPerStep = (e.stats.submits - submitsBefore) / stepCount;
  const jxStep = jx
    ? await peerTime(
      "jaxjs",
      "train step",
      async () => (await jx.timeTrainStep(B, peerReps)).msPerStep,
    )
    : null;
  const tfStep = tf
    ? await peerTime(
      "tfjs",
      "train step",
      async () => (await tf.timeTrainStep(B, peerReps)).msPerStep,
    )
    : null;

  // Memory in steady state: the pool's bytes after step 10 and after many more.
  const longRun = quick ? 50 : 500;
  const runUntil = async (steps: number) => {
    while (stepCount < steps) {
      e.tidy(step);
      e.flush();
      if (stepCount % 25 === 0) await e.sync();
    }
    await e.sync();
  };
  await runUntil(10);
  const poolAt10 = e.pool.bytesAllocated;
  await runUntil(longRun);
  const poolAtEnd = e.pool.bytesAllocated;

  const imgs = (ms: number | null) => (ms ? (1000 * B) / ms : null);
  const faster = Math.min(jxStep ?? Infinity, tfStep ?? Infinity);
  const trainStep = {
    model: "small",
    batch: B,
    ours_ms: oursStep,
    ours_img_s: imgs(oursStep)!,
    jaxjs_ms: jxStep,
    jaxjs_img_s: imgs(jxStep),
    tfjs_ms: tfStep,
    tfjs_img_s: imgs(tfStep),
    speedup: Number.isFinite(faster) ? faster / oursStep : null,
    submits_per_step: submitsPerStep,
  };

  const f = (v: number | null, digits = 1) => (v === null ? "–" : v.toFixed(digits));
  say("\n## Kernels\n");
  say(
    "| kernel | shape | ours ms | ours GFLOP/s (GB/s) | % peak | tfjs ms | jax-js ms | speed-up vs faster peer |",
  );
  say("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    const rate = r.ours_gflops !== null ? f(r.ours_gflops) : `(${f(r.ours_gbs)} GB/s)`;
    say(
      `| ${r.name} | ${r.shape} | ${f(r.ours_ms, 2)} | ${rate} | ${f(r.pct_peak, 0)} | ${
        f(r.tfjs_ms)
      } | ${f(r.jaxjs_ms)} | ${r.speedup ? f(r.speedup) + "x" : "–"} |`,
    );
  }
  say("\n## Training step (small model, batch 32: forward, backward, Adam)\n");
  say("| engine | ms/step | images/s |");
  say("| --- | ---: | ---: |");
  say(`| ours | ${f(oursStep, 0)} | ${f(trainStep.ours_img_s)} |`);
  say(`| jax-js 0.1.25 (jit) | ${f(jxStep, 0)} | ${f(trainStep.jaxjs_img_s, 2)} |`);
  say(`| tfjs 4.22 webgpu (layers) | ${f(tfStep, 0)} | ${f(trainStep.tfjs_img_s, 2)} |`);
  say(
    `\nSpeed-up over the faster peer: ${trainStep.speedup ? f(trainStep.speedup) + "x" : "–"}; ` +
      `queue submits per step: ${f(submitsPerStep, 2)}.`,
  );
  say(
    `GPU memory (pool): ${(poolAt10 / 2 ** 20).toFixed(1)} MiB after step 10, ` +
      `${(poolAtEnd / 2 ** 20).toFixed(1)} MiB after step ${longRun}` +
      (poolAt10 === poolAtEnd ? " (equal)." : " (GREW)."),
  );
  if (values.json) {
    console.log(JSON.stringify({
      adapter: e.info.description,
      date: new Date().toISOString(),
      quick,
      peak_gflops: peak,
      train_step: trainStep,
      memory: { pool_bytes_step10: poolAt10, [`pool_bytes_step${longRun}`]: poolAtEnd },
      kernels: rows.map((r) => ({
        name: r.name,
        shape: r.shape,
        ours_ms: r.ours_ms,
        ours_gflops: r.ours_gflops,
        ours_gbs: r.ours_gbs,
        pct_peak: r.pct_peak,
        tfjs_gflops: r.tfjs_gflops,
        jaxjs_gflops: r.jaxjs_gflops,
        tfjs_ms: r.tfjs_ms,
        jaxjs_ms: r.jaxjs_ms,
        speedup: r.speedup,
      })),
    }));
  }
  Deno.exit(0); // the peers keep timers alive
}

if (import.meta.main) await runTask(main);
