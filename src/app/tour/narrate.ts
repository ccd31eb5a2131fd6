/**
 * The tour's text: what each op computes in a line, then op by op its shapes, kernels,
 * dispatches, GPU time and the comparison with its twin, and the step's summary.
 *
 * @module
 */

import {
  TOUR_AGE,
  TOUR_TOLERANCE,
  type TourCheck,
  type TourDispatch,
  type TourOp,
  type TourResult,
} from "./types.ts";
import { shapeText } from "./check.ts";

const GLOSS: Record<string, [forward: string, backward: string]> = {
  conv2d: [
    "each output = sum over a KxK window of every input channel times a weight",
    "dL/dx: dL/dy convolved with the flipped weights; dL/dw: x correlated with dL/dy",
  ],
  batchNorm2d: [
    "per channel: subtract the batch mean, divide by the batch std, * gamma + beta",
    "dx = gamma/std * (dy - mean(dy) - xhat * mean(dy * xhat)); dgamma, dbeta: sums",
  ],
  relu: ["max(x, 0), elementwise", "dy where x > 0, else 0"],
  elu: ["x if x > 0 else exp(x) - 1", "dy where x > 0, else dy * exp(x)"],
  maxPool2d: [
    "largest value of each window (its position is kept for backward)",
    "each dy goes back to the window position that held the maximum",
  ],
  globalAvgPool: [
    "mean of each channel over all pixels: [N,H,W,C] -> [N,C]",
    "dy / (H*W) to every pixel",
  ],
  reshape: ["flattens the feature maps (a copy)", "the same copy, back"],
  concatFeatures: [
    "appends the child's sex (1 boy, 0 girl) to the image features",
    "splits dy; the sex input needs no gradient, so only the image part is kept",
  ],
  linear: [
    "x @ w + b: each output is a weighted sum of all inputs",
    "dx = dy @ w^T, dw = x^T @ dy, db = sum of dy",
  ],
  l1Loss: [
    "mean |prediction - target| (standardized months)",
    "sign(pred - target) / n, times dL/dL = 1",
  ],
  adam: [
    "m = .9m + .1g, v = .999v + .001g^2, w -= lr * m_hat / (sqrt(v_hat) + eps)",
    "",
  ],
};

/** A one-line description of what an op computes. */
export function opGloss(op: string, stage: TourOp["stage"]): string {
  const g = GLOSS[op];
  if (!g) return "";
  return stage === "backward" ? g[1] : g[0];
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length));
const lpad = (s: string, n: number) => (s.length >= n ? s : " ".repeat(n - s.length) + s);
const int = (n: number) => n.toLocaleString("en-US");

/** `prefix` + items joined by ", ", wrapped under 100 columns with a hanging indent. */
function wrap(prefix: string, items: string[], sep = ", "): string[] {
  const lines: string[] = [];
  let line = prefix;
  items.forEach((item, i) => {
    const piece = item + (i < items.length - 1 ? sep.trimEnd() : "");
    if (line.length > prefix.length && line.length + 1 + piece.length > 99) {
      lines.push(line);
      line = " ".repeat(prefix.length) + piece;
    } else line += (line.length > prefix.length ? " " : "") + piece;
  });
  lines.push(line);
  return lines;
}

/** Workgroup size as `64` or `8x8x1`. */
const wgText = (s: readonly number[]) => (s[1] === 1 && s[2] === 1 ? String(s[0]) : s.join("x"));

/** `2.65 MFLOP`, `147 kB` style. */
function si(n: number, unit: string): string {
  const steps: [number, string][] = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, p] of steps) if (n >= f) return `${(n / f).toPrecision(3)} ${p}${unit}`;
  return `${n} ${unit}`;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toPrecision(6) : v.toExponential(4);
}

function ms(v: number | null): string {
  return v === null ? "-" : v.toFixed(3);
}

function verdict(err: number): string {
  return err <= TOUR_TOLERANCE ? "ok" : "MISMATCH";
}

/** Dispatch rows; a run of 4 or more of the same kernel shrinks to one line. */
function dispatchRows(ds: TourDispatch[]): string[] {
  const rows: string[] = [];
  for (let i = 0; i < ds.length;) {
    let j = i;
    while (j < ds.length && ds[j].kernel === ds[i].kernel) j++;
    const d = ds[i];
    const kernel = pad(d.kernel, 37) + pad(d.entryPoint, 6);
    if (j - i >= 4) {
      const inv = ds.slice(i, j).reduce((a, x) => a + x.invocations, 0);
      const t = d.ms === null ? null : ds.slice(i, j).reduce((a, x) => a + x.ms!, 0);
      rows.push(
        `    ${kernel}${pad(`${j - i} dispatches x ${wgText(d.workgroupSize)}`, 28)}` +
          `${lpad(int(inv), 12)}${lpad(ms(t), 10)}`,
      );
      i = j;
      continue;
    }
    for (let k = i; k < j; k++) {
      const x = ds[k];
      const size = `[${x.workgroups.join(",")}] x ${wgText(x.workgroupSize)}`;
      rows.push(
        `    ${pad(x.kernel, 37)}${pad(x.entryPoint, 6)}${pad(size, 28)}` +
          `${lpad(int(x.invocations), 12)}${lpad(ms(x.ms), 10)}`,
      );
    }
    i = j;
  }
  return rows;
}

function checkRows(c: TourCheck): string[] {
  const vals = (v: number[]) => v.map((x) => lpad(num(x), 13)).join("");
  return [
    `    ${pad(c.name, 34)}${pad(shapeText(c.shape), 20)}err ${c.relError.toExponential(1)}  ` +
    verdict(c.relError),
    `      GPU ${vals(c.gpu)}`,
    `      f64 ${vals(c.ref)}`,
  ];
}

/** The narration of one op: a compact table that fits 100 columns. */
export function formatOp(
  op: TourOp,
  n: number,
  total: number,
  withGloss: boolean,
  example = "",
): string[] {
  const title = `-- ${n}/${total} ${op.stage} ${op.op} ${op.layer}` +
    (op.detail ? `: ${op.detail}` : "");
  const lines = [`${title} ${"-".repeat(Math.max(2, 97 - title.length))}`];
  if (withGloss) lines.push(`    what: ${opGloss(op.op, op.stage)}`);
  if (withGloss && op.dispatches.some((d) => d.kernel.startsWith("generated/conv2d_rows"))) {
    lines.push(
      "    note: on a CPU adapter each invocation of a rows kernel computes whole output rows:",
      "          few, fat invocations (src/ops/conv2d_kernels.ts explains why)",
    );
  }
  lines.push(`    code: ${op.source}, kernels below; CPU twin: ${op.refSource}`);
  lines.push(...wrap("    in:  ", op.inputs.map((x) => `${x.name} ${shapeText(x.shape)}`)));
  lines.push(...wrap("    out: ", op.outputs.map((x) => `${x.name} ${shapeText(x.shape)}`)));
  const work = op.flops !== null
    ? si(op.flops, "FLOP")
    : `- FLOP (memory-bound, ${si(op.bytes, "B")} in+out)`;
  lines.push(
    `    work: ${work}; GPU ${ms(op.ms)} ms in ${op.dispatches.length} dispatch` +
      (op.dispatches.length === 1 ? "" : "es"),
  );
  lines.push(
    `    ${pad("kernel", 37)}${pad("entry", 6)}${pad("workgroups x workgroup size", 28)}` +
      `${lpad("invocations", 12)}${lpad("ms", 10)}`,
  );
  lines.push(...dispatchRows(op.dispatches));
  if (op.checks.length <= 3) {
    for (const c of op.checks) lines.push(...checkRows(c));
  } else {
    const worst = op.checks.reduce((a, c) => (c.relError > a.relError ? c : a));
    const shown = op.checks.find((c) => c.name === example) ?? op.checks[0];
    lines.push(...checkRows(shown));
    lines.push(
      `    ... ${op.checks.length} tensors checked, worst ${worst.name} err ` +
        `${worst.relError.toExponential(1)}  ${verdict(worst.relError)}`,
    );
  }
  return lines;
}

/** The whole narration, line by line (each under 100 columns). */
export function formatTour(r: TourResult): string[] {
  const ageNorm = (r.targetMonths - TOUR_AGE.mean) / TOUR_AGE.sd;
  const timed = r.ops.some((o) => o.ms !== null);
  const out: string[] = [
    `One training step of the "${r.config.name}" bone-age CNN, taken apart`,
    `  adapter: ${r.adapter}${
      r.cpuAdapter ? " (runs on the CPU)" : ""
    }, ${r.kernels} convolution kernels`,
    `  model:   ${r.config.inputHeight}x${r.config.inputWidth} input, ` +
    `${r.config.trunk.filter((s) => s.type === "conv").length} convolutions, ` +
    `${int(r.parameterCount)} trainable parameters (src/model/)`,
    ...wrap("  image:   ", r.source.split(" "), " "),
    `  sex:     ${r.male ? "M (boy), fed to the head as 1" : "F (girl), fed to the head as 0"}`,
    `  target:  ${r.targetMonths} months -> (${r.targetMonths} - ${TOUR_AGE.mean}) / ${TOUR_AGE.sd} = ` +
    `${ageNorm.toFixed(4)} (bone ages are standardized)`,
    `  pixels:  (byte / 255 - ${r.pixelMean.toFixed(4)}) / ${r.pixelStd.toFixed(4)} ` +
    "(this image's own mean and std)",
    `  step:    a batch of 1 image, L1 loss, Adam with lr ${r.lr}`,
    timed
      ? "  times:   GPU clock (timestamp queries), each dispatch in its own timed pass" +
        (r.warmedUp ? "," : "")
      : "  times:   - (this adapter has no timestamp queries)",
    ...(timed && r.warmedUp
      ? ["           after one untimed warm-up step (so pipeline compilation is not counted)"]
      : []),
    "  checks:  each op's GPU inputs were read back and fed to its float64 twin in src/ref/;",
    `           err = max|GPU - f64| / max|f64| over the whole tensor, ok when <= ${TOUR_TOLERANCE};`,
    "           values shown: at the largest |f64|, then 1/4, 1/2 and 3/4 of the way through",
    "",
  ];
  const seen = new Set<string>();
  r.ops.forEach((op, i) => {
    if (i === 0 || r.ops[i - 1].stage !== op.stage) {
      out.push(
        op.stage === "forward"
          ? "FORWARD: image -> prediction -> loss (BoneAgeNet.forward, then l1Loss)"
          : op.stage === "backward"
          ? "BACKWARD: Engine.gradients walks the tape (src/engine/autograd.ts) from the end"
          : "UPDATE: Adam (src/model/optim.ts, kernels/adam.wgsl)",
        "",
      );
    }
    const key = `${op.stage}:${op.op}`;
    out.push(...formatOp(op, i + 1, r.ops.length, !seen.has(key), r.adam.name), "");
    seen.add(key);
  });

  const worst = r.ops.flatMap((o) => o.checks.map((c) => ({ o, c })))
    .reduce((a, b) => (b.c.relError > a.c.relError ? b : a));
  const stageMs = (s: TourOp["stage"]) =>
    r.ops.filter((o) => o.stage === s).reduce((a, o) => a + (o.ms ?? 0), 0);
  const checks = r.ops.reduce((a, o) => a + o.checks.length, 0);
  const mism = r.ops.reduce(
    (a, o) => a + o.checks.filter((c) => !(c.relError <= TOUR_TOLERANCE)).length,
    0,
  );
  out.push(
    "SUMMARY",
    `  loss (L1, standardized): GPU ${r.loss.toFixed(6)}, f64 ${r.lossRef.toFixed(6)} ` +
      `= ${(r.loss * TOUR_AGE.sd).toFixed(1)} months off`,
    `  checked ${checks} tensors of ${r.ops.length} ops against float64: ` +
      (mism ? `${mism} MISMATCH` : "all ok"),
    `    worst err ${worst.c.relError.toExponential(1)}: ${worst.o.stage} ${worst.o.op} ` +
      `${worst.o.layer}, ${worst.c.name}`,
    `  GPU time: forward ${stageMs("forward").toFixed(2)} ms, backward ${
      stageMs("backward").toFixed(2)
    } ms, ` +
      `update ${
        stageMs("update").toFixed(2)
      } ms; ${r.dispatchCount} dispatches, ${r.submits} submit` +
      (r.submits === 1 ? "" : "s"),
    "",
    "  gradient norm per parameter (|g|), weights (|w|) and the step's change (|dw|):",
    `    ${pad("parameter", 24)}${pad("shape", 20)}${lpad("|g|", 12)}${lpad("|w|", 12)}${
      lpad("|dw|", 12)
    }`,
  );
  for (const p of r.params) {
    out.push(
      `    ${pad(p.name, 24)}${pad(shapeText(p.shape), 20)}${lpad(num(p.gradNorm), 12)}` +
        `${lpad(num(p.weightNorm), 12)}${lpad(num(p.updateNorm), 12)}`,
    );
  }
  const a = r.adam;
  out.push(
    "",
    `  Adam on ${a.name}[${a.index}] (the output layer's weight with the largest gradient):`,
    `    before ${num(a.before)}, gradient ${num(a.grad)}, after ${num(a.after)} ` +
      `(f64 Adam: ${num(a.afterRef)})`,
    `    moved ${num(a.after - a.before)}: on its first step Adam moves every weight by about ` +
      `lr = ${a.lr},`,
    "    against the sign of its gradient (m_hat / sqrt(v_hat) = g / |g|)",
    "",
    `  predicted bone age: ${r.monthsBefore.toFixed(1)} months before the step, ` +
      `${r.monthsAfter.toFixed(1)} after (target ${r.targetMonths})`,
    "  (batch statistics, as in training; with one image a step moves it far, even past the target)",
  );
  return out;
}
