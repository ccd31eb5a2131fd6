/**
 * Evaluation summaries (MAE overall, by sex, by age band) and the self-contained
 * `report.html`: training curves, predicted vs true, and a Bland–Altman plot, drawn with
 * Chart.js, whose UMD build is inlined so the file opens offline.
 *
 * @module
 */
import type { EpochMetrics } from "./checkpoint.ts";

/** One evaluated image. */
export interface PredictionRow {
  /** Image id. */
  id: string;
  /** 1 male, 0 female. */
  male: number;
  /** Reference bone age, months. */
  truth: number;
  /** Predicted bone age, months. */
  predicted: number;
}

/** Age bands of the summary, in years: [from, to). */
export const AGE_BANDS_YEARS: ReadonlyArray<readonly [number, number]> = [
  [0, 2],
  [2, 6],
  [6, 10],
  [10, 14],
  [14, 19],
];

/** MAE of a group and its size. */
export interface GroupMae {
  /** Images in the group. */
  n: number;
  /** Mean absolute error in months (NaN when the group is empty). */
  mae: number;
}

/** The numbers `deno task eval` prints and writes. */
export interface EvalSummary {
  /** Images evaluated. */
  n: number;
  /** MAE in months over all images. */
  mae: number;
  /** MAE over boys. */
  mae_male: number;
  /** MAE over girls. */
  mae_female: number;
  /** Mean signed error (predicted - true), months. */
  bias: number;
  /** MAE per age band, keyed "0-2y" ... "14-19y". */
  by_age: Record<string, GroupMae>;
  /** MAE of the mean predictor: every image given the training split's mean bone age. */
  mae_mean_predictor: number;
}

function groupMae(rows: readonly PredictionRow[]): GroupMae {
  const n = rows.length;
  const mae = n ? rows.reduce((s, r) => s + Math.abs(r.predicted - r.truth), 0) / n : NaN;
  return { n, mae };
}

/**
 * Summarizes `rows` overall, by sex and by age band (of the reference age), beside the mean
 * predictor that answers `trainingMeanMonths` for every image.
 */
export function summarize(
  rows: readonly PredictionRow[],
  trainingMeanMonths: number,
): EvalSummary {
  const by_age: Record<string, GroupMae> = {};
  for (const [from, to] of AGE_BANDS_YEARS) {
    by_age[`${from}-${to}y`] = groupMae(
      rows.filter((r) => r.truth >= from * 12 && r.truth < to * 12),
    );
  }
  return {
    n: rows.length,
    mae: groupMae(rows).mae,
    mae_male: groupMae(rows.filter((r) => r.male === 1)).mae,
    mae_female: groupMae(rows.filter((r) => r.male === 0)).mae,
    bias: rows.reduce((s, r) => s + r.predicted - r.truth, 0) / rows.length,
    by_age,
    mae_mean_predictor: groupMae(rows.map((r) => ({ ...r, predicted: trainingMeanMonths }))).mae,
  };
}

/** `predictions.csv`: id, sex, true, predicted, error (months, predicted - true). */
export function predictionsCsv(rows: readonly PredictionRow[]): string {
  const lines = ["id,sex,true,predicted,error"];
  for (const r of rows) {
    lines.push(
      `${r.id},${r.male ? "M" : "F"},${r.truth.toFixed(2)},${r.predicted.toFixed(2)},${
        (r.predicted - r.truth).toFixed(2)
      }`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Chart.js's UMD build, read from the npm package (inlined into the report). */
async function chartJsSource(): Promise<string> {
  const url = new URL("chart.umd.min.js", import.meta.resolve("chart.js"));
  return await Deno.readTextFile(url);
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** The self-contained HTML report. */
export async function renderReport(options: {
  title: string;
  summary: EvalSummary;
  rows: readonly PredictionRow[];
  metrics: readonly EpochMetrics[];
}): Promise<string> {
  const { title, summary, rows, metrics } = options;
  const diffs = rows.map((r) => r.predicted - r.truth);
  const sd = Math.sqrt(
    diffs.reduce((s, d) => s + (d - summary.bias) ** 2, 0) / Math.max(1, diffs.length - 1),
  );
  const data = {
    metrics,
    scatter: rows.map((r) => ({ x: r.truth, y: r.predicted, male: r.male })),
    blandAltman: rows.map((r) => ({
      x: (r.truth + r.predicted) / 2,
      y: r.predicted - r.truth,
      male: r.male,
    })),
    bias: summary.bias,
    limits: [summary.bias - 1.96 * sd, summary.bias + 1.96 * sd],
  };
  const bandRows = Object.entries(summary.by_age)
    .map(([band, g]) =>
      `<tr><td>${band}</td><td>${g.n}</td><td>${g.n ? g.mae.toFixed(2) : "–"}</td></tr>`
    )
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font:15px system-ui,sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:1.5rem}
figure{margin:0}table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #ddd;text-align:right}
.note{color:#666;font-size:13px}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p><b>MAE ${summary.mae.toFixed(2)} months</b> over ${summary.n} radiographs
(boys ${summary.mae_male.toFixed(2)}, girls ${summary.mae_female.toFixed(2)}; mean error ${
    summary.bias.toFixed(2)
  }).</p>
<table><tr><th>age band</th><th>n</th><th>MAE (months)</th></tr>${bandRows}</table>
<div class="grid">
<figure><canvas id="curves"></canvas></figure>
<figure><canvas id="scatter"></canvas></figure>
<figure><canvas id="ba"></canvas></figure>
</div>
<p class="note">Research software, not a medical device.</p>
<script>${await chartJsSource()}</script>
<script>
const data = ${JSON.stringify(data)};
const sexColor = (p) => p.male ? "rgba(31,119,180,0.55)" : "rgba(214,39,40,0.55)";
const byS = (pts, male) => pts.filter((p) => p.male === male);
if (data.metrics.length) new Chart(document.getElementById("curves"), {
  type: "line",
  data: { labels: data.metrics.map((m) => m.epoch), datasets: [
    { label: "train MAE (months)", data: data.metrics.map((m) => m.train_mae_months) },
    { label: "validation MAE (months)", data: data.metrics.map((m) => m.val_mae) } ] },
  options: { plugins: { title: { display: true, text: "Training curves" } },
    scales: { x: { title: { display: true, text: "epoch" } }, y: { title: { display: true, text: "MAE (months)" } } } },
});
const maxAge = Math.max(240, ...data.scatter.map((p) => Math.max(p.x, p.y)));
new Chart(document.getElementById("scatter"), {
  type: "scatter",
  data: { datasets: [
    { label: "boys", data: byS(data.scatter, 1), backgroundColor: sexColor({ male: 1 }) },
    { label: "girls", data: byS(data.scatter, 0), backgroundColor: sexColor({ male: 0 }) },
    { label: "identity", type: "line", data: [{ x: 0, y: 0 }, { x: maxAge, y: maxAge }], borderColor: "#888", pointRadius: 0 } ] },
  options: { plugins: { title: { display: true, text: "Predicted vs reference bone age" } },
    scales: { x: { min: 0, max: maxAge, title: { display: true, text: "reference (months)" } },
      y: { min: 0, max: maxAge, title: { display: true, text: "predicted (months)" } } } },
});
const xs = data.blandAltman.map((p) => p.x);
const line = (y, label, dash) => ({ label, type: "line", data: [{ x: Math.min(...xs), y }, { x: Math.max(...xs), y }],
  borderColor: "#444", borderDash: dash, pointRadius: 0 });
new Chart(document.getElementById("ba"), {
  type: "scatter",
  data: { datasets: [
    { label: "boys", data: byS(data.blandAltman, 1), backgroundColor: sexColor({ male: 1 }) },
    { label: "girls", data: byS(data.blandAltman, 0), backgroundColor: sexColor({ male: 0 }) },
    line(data.bias, "mean difference", []), line(data.limits[0], "-1.96 SD", [6, 4]), line(data.limits[1], "+1.96 SD", [6, 4]) ] },
  options: { plugins: { title: { display: true, text: "Bland–Altman: predicted − reference vs mean" } },
    scales: { x: { title: { display: true, text: "mean of reference and predicted (months)" } },
      y: { title: { display: true, text: "predicted − reference (months)" } } } },
});
</script></body></html>
`;
}
