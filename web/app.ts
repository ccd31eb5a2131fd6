/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The bone-age reader page: open a radiograph, pick the sex, optionally give the
 * chronological age, and read the estimate, the model's input and the occlusion heatmap.
 *
 * Everything runs here. The only requests this page makes are for its own assets, the
 * kernels and the checkpoint; the radiograph is read with the File API and never sent.
 * `document.body.dataset.state` (loading, ready, busy, done, error) lets tests wait.
 *
 * @module
 */
import { resizeGray, sniffFormat } from "../src/data/image.ts";
import type { GpuInfo } from "../src/engine/device.ts";
import {
  BoneAgeReader,
  CheckpointError,
  type Estimate,
  NoHandError,
  NotAnImageError,
  NoWebGpuError,
  type PreparedImage,
} from "../src/app/browser/reader.ts";
import {
  describeDifference,
  grayToRgba,
  occlusionOverlay,
  yearsAndMonths,
} from "../src/app/browser/present.ts";

const el = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`page is missing #${id}`);
  return found as T;
};

const ui = {
  form: el<HTMLFormElement>("form"),
  drop: el("drop"),
  file: el<HTMLInputElement>("file"),
  fileError: el("file-error"),
  age: el<HTMLInputElement>("age"),
  ageHint: el("age-hint"),
  estimate: el<HTMLButtonElement>("estimate"),
  formError: el("form-error"),
  status: el("status"),
  fatal: el("fatal"),
  view: el<HTMLCanvasElement>("view"),
  viewBox: el("view-box"),
  viewEmpty: el("view-empty"),
  showHeatmap: el<HTMLInputElement>("show-heatmap"),
  resultEmpty: el("result-empty"),
  resultBody: el("result-body"),
  months: el<HTMLOutputElement>("months"),
  years: el("years"),
  uncertainty: el("uncertainty"),
  difference: el("difference"),
  input: el<HTMLCanvasElement>("input"),
  inputFigure: el("input-figure"),
  inputCaption: el("input-caption"),
  modelInfo: el("model-info"),
};
const sexRadios = [...document.querySelectorAll<HTMLInputElement>('input[name="sex"]')];
const controls: HTMLInputElement[] = [ui.file, ...sexRadios, ui.age];

let reader: BoneAgeReader | null = null;
let image: PreparedImage | null = null;
let imageName = "";
let result: { estimate: Estimate; male: 0 | 1 } | null = null;
let busy = false;

type PageState = "loading" | "ready" | "busy" | "done" | "error";
function setState(state: PageState, status?: string): void {
  document.body.dataset.state = state;
  if (status !== undefined) ui.status.textContent = status;
}

function show(node: HTMLElement, text: string | null): void {
  node.textContent = text ?? "";
  node.hidden = !text;
}

function setControlsEnabled(enabled: boolean): void {
  // The button stays enabled without an image (a disabled button is skipped by Tab and
  // says nothing); pressing it then says what is missing.
  for (const c of [...controls, ui.estimate]) c.disabled = !enabled;
}

// ---- fatal errors (no WebGPU, bad checkpoint) ------------------------------------------

/** Shows a page-level problem as a heading, a message and a list of fixes. */
function showFatal(title: string, message: string, fixes: (string | Node)[][]): void {
  ui.fatal.replaceChildren();
  const h = document.createElement("h2");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = message;
  ui.fatal.append(h, p);
  if (fixes.length) {
    const ul = document.createElement("ul");
    for (const parts of fixes) {
      const li = document.createElement("li");
      li.append(...parts);
      ul.append(li);
    }
    ui.fatal.append(ul);
  }
  ui.fatal.hidden = false;
}

function code(text: string): HTMLElement {
  const c = document.createElement("code");
  c.textContent = text;
  return c;
}

function explainStartupError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof NoWebGpuError) {
    const fixes: (string | Node)[][] = [
      [
        "Chrome or Edge 113 or newer on Windows, macOS or ChromeOS have WebGPU on by default: " +
        "update the browser and make sure “Use graphics acceleration when available” is on " +
        "(Settings → System).",
      ],
      [
        "Chrome on Linux: open ",
        code("chrome://flags/#enable-unsafe-webgpu"),
        ", set it to Enabled (and ",
        code("chrome://flags/#enable-vulkan"),
        "), then relaunch the browser.",
      ],
      [
        "Firefox 141 or newer on Windows has WebGPU; elsewhere set ",
        code("dom.webgpu.enabled"),
        " to true in ",
        code("about:config"),
        ".",
      ],
      ["Safari 26 or newer has WebGPU; older Safari: Develop → Feature Flags → WebGPU."],
    ];
    if (!globalThis.isSecureContext) {
      fixes.unshift([
        "WebGPU needs a secure page: open the reader as ",
        code(`http://127.0.0.1:${location.port}/`),
        " or ",
        code(`http://localhost:${location.port}/`),
        ", not through another address.",
      ]);
    }
    showFatal("WebGPU is not available", `${message} To use the reader:`, fixes);
  } else if (err instanceof CheckpointError) {
    showFatal("The checkpoint cannot be used", message, [
      [
        "Restart the server with a run folder written by ",
        code("deno task train"),
        ", e.g. ",
        code("deno task serve --checkpoint runs/small"),
        ", and check that its best.json and best.safetensors belong together.",
      ],
    ]);
  } else {
    showFatal("The model could not start", message, []);
  }
  setState("error", "The reader cannot run: see the message above.");
}

// ---- drawing ---------------------------------------------------------------------------

/** Draws the radiograph (from the decoded gray the model used) fitted to its box. */
function drawView(): void {
  const canvas = ui.view;
  if (!image) {
    canvas.hidden = true;
    ui.viewEmpty.hidden = false;
    return;
  }
  const { gray } = image;
  const boxW = ui.viewBox.clientWidth, boxH = ui.viewBox.clientHeight;
  const fit = Math.min(boxW / gray.width, boxH / gray.height, 1);
  const cssW = Math.max(1, Math.floor(gray.width * fit));
  const cssH = Math.max(1, Math.floor(gray.height * fit));
  const dpr = Math.min(globalThis.devicePixelRatio || 1, 2);
  // Never upscale past the file's own resolution: the browser's smoothing does that better.
  const w = Math.min(gray.width, Math.round(cssW * dpr));
  const h = Math.min(gray.height, Math.round(cssH * dpr));
  canvas.width = w;
  canvas.height = h;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  const ctx = canvas.getContext("2d")!;
  ctx.putImageData(new ImageData(grayToRgba(resizeGray(gray, w, h)), w, h), 0, 0);
  // A registered model's map lies over the registered crop, drawn on the input figure instead.
  if (result && ui.showHeatmap.checked && image.box) {
    const overlay = occlusionOverlay(result.estimate.occlusion, image.box, image.size, w, h);
    const layer = new OffscreenCanvas(w, h);
    layer.getContext("2d")!.putImageData(new ImageData(overlay, w, h), 0, 0);
    ctx.drawImage(layer, 0, 0);
  }
  canvas.hidden = false;
  ui.viewEmpty.hidden = true;
  canvas.setAttribute(
    "aria-label",
    `${imageName}, ${gray.width}×${gray.height} pixels` +
      (result && ui.showHeatmap.checked && image.box ? ", with the occlusion heatmap over it" : ""),
  );
}

function drawInput(): void {
  ui.inputFigure.hidden = !image;
  if (!image) return;
  const { pixels, size, description } = image;
  ui.input.width = size;
  ui.input.height = size;
  const ctx = ui.input.getContext("2d")!;
  ctx.putImageData(new ImageData(grayToRgba(pixels), size, size), 0, 0);
  ui.inputCaption.textContent = `What the model sees: ${size}×${size} pixels, ${description}.` +
    (result && ui.showHeatmap.checked ? " Heatmap over it: red raised the estimate." : "");
  if (result && ui.showHeatmap.checked) {
    const whole = { x: 0, y: 0, width: size, height: size };
    const layer = new OffscreenCanvas(size, size);
    layer.getContext("2d")!.putImageData(
      new ImageData(
        occlusionOverlay(result.estimate.occlusion, whole, size, size, size),
        size,
        size,
      ),
      0,
      0,
    );
    ctx.drawImage(layer, 0, 0);
  }
}

// ---- results ---------------------------------------------------------------------------

/** Reads the age field: a number of months, null when empty, or an error message. */
function readAge(): number | null | string {
  const text = ui.age.value.trim();
  if (text === "" && !ui.age.validity.badInput) return null;
  const months = Number(text);
  if (text === "" || !Number.isFinite(months) || months < 0 || months > 300) {
    return "The chronological age must be a number of months between 0 and 300.";
  }
  return months;
}

function showAgeHint(): void {
  const age = readAge();
  ui.ageHint.textContent = typeof age === "number"
    ? `That is ${yearsAndMonths(age)}.`
    : "For example 130 for 10 years 10 months.";
}

function renderResult(): void {
  if (!result || !reader) {
    ui.resultBody.hidden = true;
    ui.resultEmpty.hidden = false;
    return;
  }
  const { months, uncertainty } = result.estimate;
  ui.months.value = months.toFixed(1);
  ui.months.dataset.months = String(months);
  ui.years.textContent = `${yearsAndMonths(months)} (${(months / 12).toFixed(2)} years)`;
  ui.uncertainty.textContent = Number.isFinite(uncertainty)
    ? `± ${uncertainty.toFixed(1)} months: the model's mean absolute error on its validation split.`
    : "Uncertainty unknown: this checkpoint was saved before its first validation.";
  const age = readAge();
  if (typeof age === "number") {
    const { difference, text } = describeDifference(months, age, uncertainty);
    ui.difference.textContent = `Chronological age ${age} months (${yearsAndMonths(age)}). ${text}`;
    ui.difference.dataset.difference = String(difference);
  } else {
    ui.difference.textContent = "Enter the chronological age to compare with it.";
    delete ui.difference.dataset.difference;
  }
  ui.resultEmpty.hidden = true;
  ui.resultBody.hidden = false;
}

function clearResult(): void {
  result = null;
  renderResult();
  delete ui.months.dataset.months;
}

// ---- events ----------------------------------------------------------------------------

async function openFile(file: File): Promise<void> {
  if (!reader || busy) return;
  show(ui.fileError, null);
  show(ui.formError, null);
  clearResult();
  image = null;
  imageName = file.name;
  setState(
    "busy",
    reader.recipe.keypoints
      ? `Decoding ${file.name} and finding the hand…`
      : `Decoding ${file.name}…`,
  );
  busy = true; // a second file or an estimate must wait for this one
  try {
    // Judge the first bytes before reading all of a file that may be large and no image.
    if (sniffFormat(new Uint8Array(await file.slice(0, 8).arrayBuffer())) === "unknown") {
      throw new NotAnImageError("not a PNG or JPEG file");
    }
    image = await reader.prepare(new Uint8Array(await file.arrayBuffer()));
  } catch (err) {
    busy = false;
    const why = err instanceof NotAnImageError
      ? err.message
      : `reading it failed: ${(err as Error).message}`;
    show(
      ui.fileError,
      err instanceof NoHandError
        ? `“${file.name}”: ${err.message} Choose a radiograph of one left hand.`
        : `“${file.name}” is not an image this reader can open (${why}). ` +
          "Choose a hand radiograph saved as PNG or JPEG.",
    );
    drawView();
    drawInput();
    setControlsEnabled(true);
    setState("ready", "No radiograph open.");
    return;
  }
  busy = false;
  drawView();
  drawInput();
  setControlsEnabled(true);
  setState(
    "ready",
    `Opened ${file.name} (${image.gray.width}×${image.gray.height}). ` +
      "Choose the sex and press “Estimate bone age”.",
  );
}

async function runEstimate(): Promise<void> {
  if (!reader || busy) return;
  show(ui.formError, null);
  if (!image) {
    show(ui.formError, "Open a radiograph first.");
    ui.file.focus();
    return;
  }
  const sex = sexRadios.find((r) => r.checked)?.value;
  if (!sex) {
    show(ui.formError, "Choose the child's sex: the model needs it.");
    sexRadios[0].focus();
    return;
  }
  const age = readAge();
  if (typeof age === "string") {
    show(ui.formError, age);
    ui.age.focus();
    return;
  }
  const male = sex === "M" ? 1 : 0;
  busy = true;
  setControlsEnabled(false);
  setState("busy", "Estimating: one prediction, then one per heatmap cell…");
  try {
    result = { estimate: await reader.estimate(image, male), male };
    renderResult();
    drawView();
    drawInput();
    setState("done", `Estimated in ${(result.estimate.milliseconds / 1000).toFixed(1)} s.`);
  } catch (err) {
    show(ui.formError, `The estimate failed: ${(err as Error).message}`);
    setState("ready", "The estimate failed.");
  } finally {
    busy = false;
    setControlsEnabled(true);
  }
}

function wireEvents(): void {
  // A file dropped anywhere must not make the browser navigate away to show it.
  for (const type of ["dragover", "drop"]) {
    globalThis.addEventListener(type, (e) => e.preventDefault());
  }
  ui.drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    ui.drop.classList.add("over");
  });
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("over"));
  ui.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    ui.drop.classList.remove("over");
    const file = e.dataTransfer?.files[0];
    if (file && !ui.file.disabled) void openFile(file);
  });
  ui.file.addEventListener("change", () => {
    const file = ui.file.files?.[0];
    if (file) void openFile(file);
  });
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    void runEstimate();
  });
  // A different sex needs a new prediction; the age only changes the comparison.
  for (const r of sexRadios) {
    r.addEventListener("change", () => {
      if (result && String(result.male) !== String(r.value === "M" ? 1 : 0)) {
        clearResult();
        drawView();
        drawInput();
        setState("ready", "Sex changed: press “Estimate bone age” again.");
      }
    });
  }
  ui.age.addEventListener("input", () => {
    showAgeHint();
    if (result) renderResult();
  });
  ui.showHeatmap.addEventListener("change", () => {
    drawView();
    drawInput();
  });
  let resizeTimer: ReturnType<typeof setTimeout> | undefined;
  globalThis.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawView, 150);
  });
}

/** Browsers often leave the adapter's description empty; vendor and architecture remain. */
function adapterName(info: GpuInfo): string {
  if (info.description && info.description !== "unknown adapter") return info.description;
  return [info.vendor, info.architecture].filter(Boolean).join(" ") || "unnamed adapter";
}

async function main(): Promise<void> {
  setControlsEnabled(false);
  setState("loading");
  wireEvents();
  try {
    reader = await BoneAgeReader.open((line) => setState("loading", line));
  } catch (err) {
    explainStartupError(err);
    return;
  }
  const { meta, engine } = reader;
  const size = reader.size;
  ui.modelInfo.textContent = `Model “${meta.config.name}” (${size}×${size} input), ` +
    `${meta.epoch} epoch${meta.epoch === 1 ? "" : "s"} of training, validation MAE ` +
    `${Number.isFinite(meta.valMae) ? meta.valMae.toFixed(1) : "?"} months. GPU: ` +
    `${adapterName(engine.info)}${engine.info.isFallback ? " (software)" : ""}.`;
  setControlsEnabled(true);
  setState("ready", "Ready: open a radiograph.");
}

void main();
