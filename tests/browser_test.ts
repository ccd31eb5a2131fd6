/**
 * The web reader in a real browser: Debian's Chromium, headless, with WebGPU on SwiftShader,
 * driven by playwright-core against `tasks/serve.ts` on a free port.
 *
 * - On a real full-resolution radiograph the page prints the bone age `deno task predict`
 *   prints for the same file and checkpoint (within 0.1 month); the server's log shows only
 *   GETs of page assets, kernels and the checkpoint (the image was never sent); the page fits
 *   1366x768 and the form is reachable by keyboard. A screenshot goes to `test-output/`.
 * - The shipped registered model (`weights/`) finds the hand in that radiograph and gives the
 *   estimate `predict` gives; noise gets "no hand was found".
 * - A file that is not an image, a browser without WebGPU, a checkpoint that does not match
 *   its model and a server without a checkpoint each get a plain message.
 *
 * The checkpoint is a `tiny` model trained for one epoch by `tasks/train.ts` on a small
 * synthetic set. Skips, saying why, only where Chromium is missing or will not start (and the
 * radiograph case where `../shared/data` is absent).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "npm:playwright-core@1.56.1";
import { encodeGrayPng } from "../src/data/png.ts";
import { decodeGray } from "../src/data/image.ts";
import { writeSynthDataset } from "../src/data/synth.ts";
import { mulberry32 as rng } from "../src/util.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/app/safetensors.ts";
import { buildBrowserBundle, KNOWN_DENO_REFERENCES, ROOT } from "../tasks/bundle.ts";
import { type RunningServer, startServer } from "../tasks/serve.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless=new",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-vulkan=swiftshader",
  "--enable-unsafe-swiftshader",
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const SAMPLES = fileURLToPath(
  new URL("../../shared/data/rsna-fullres-sample/boneage-test-dataset/", import.meta.url),
);
const SCREENSHOTS = join(ROOT, "test-output");
const LAPTOP = { width: 1366, height: 768 };
// The page's state is waited for with selectors, not evaluated code: the page's CSP rightly
// forbids string evaluation, and this file is type-checked without the DOM lib.
const SETTLED = 'body[data-state="ready"], body[data-state="error"]';

// playwright-core reads the OS release, the home folder and the user id when it loads, so
// it is imported only once that is allowed; without it the cases fail, saying so, below.
const sysAllowed = (await Deno.permissions.query({ name: "sys" })).state === "granted";
const { chromium } = sysAllowed ? await import("npm:playwright-core@1.56.1") : { chromium: null! };

/** Why the browser cases cannot run here, or null when Chromium starts. */
async function chromiumProblem(): Promise<string | null> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    return `${CHROMIUM} not found: install it with \`apt-get install -y chromium\` ` +
      "(.ci/run does), or set CHROMIUM_PATH";
  }
  try {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    await browser.close();
    return null;
  } catch (err) {
    return `${CHROMIUM} did not start: ${(err as Error).message.split("\n")[0]}`;
  }
}

/** The first radiograph of the shared full-resolution sample, or null without the data. */
function sampleRadiograph(): string | null {
  try {
    const names = [...Deno.readDirSync(SAMPLES)]
      .filter((e) => e.isFile && e.name.endsWith(".png"))
      .map((e) => e.name)
      .sort();
    return names.length ? join(SAMPLES, names[0]) : null;
  } catch {
    return null; // ../shared/data is absent on this machine.
  }
}

const problem = sysAllowed ? await chromiumProblem() : null;
const radiograph = sampleRadiograph();
/** The shipped checkpoint (`weights/`), a registered model; null when it is not there. */
const SHIPPED = join(ROOT, "weights");
const shipped = await Deno.stat(join(SHIPPED, "best.json")).then(() => SHIPPED, () => null);
if (problem) console.warn(`browser tests skipped: ${problem}`);
if (!radiograph) console.warn(`browser radiograph test skipped: no PNG in ${SAMPLES}`);

/** Runs `deno <args>` from the repository root; returns stdout, throws with stderr. */
async function deno(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args, cwd: ROOT, stdin: "null" }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`deno ${args.join(" ")} failed:\n${text.decode(out.stderr)}`);
  }
  return text.decode(out.stdout);
}

/** What every case shares: a temp folder, the bundle, a trained checkpoint, a browser. */
interface Fixture {
  dir: string;
  bundleDir: string;
  run: string;
  browser: Browser;
}

let fixture: Promise<Fixture> | null = null;

function setUp(): Promise<Fixture> {
  fixture ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "bone-age-browser-" });
    const bundleDir = join(dir, "web");
    const bundle = await buildBrowserBundle(bundleDir);
    const unexpected = bundle.denoReferences.filter((m) => !(m in KNOWN_DENO_REFERENCES));
    assert.deepEqual(unexpected, [], "modules that name Deno slipped into the browser bundle");
    // A tiny model, one epoch on 64 synthetic hands: a real checkpoint in a few seconds.
    const data = join(dir, "synth");
    await writeSynthDataset(data, { n: 64, seed: 0, size: 64 });
    const run = join(dir, "run");
    await deno([
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "tasks/train.ts",
      ...["--config", "tiny", "--epochs", "1", "--batch", "16", "--data", data, "--out", run],
    ]);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    return { dir, bundleDir, run, browser };
  })();
  return fixture;
}

/** A server for one case, whose request log the case can inspect. */
async function serve(f: Fixture, checkpoint?: string): Promise<RunningServer & { log: string[] }> {
  const log: string[] = [];
  const server = await startServer({
    port: 0,
    checkpoint,
    bundleDir: f.bundleDir,
    log: (line) => log.push(line),
  });
  return { ...server, log };
}

/** A fresh page at laptop size, once it has loaded the model (or failed to). */
async function openPage(
  f: Fixture,
  url: string,
  init?: string,
): Promise<{ page: Page; errors: string[] }> {
  const context = await f.browser.newContext({ viewport: LAPTOP });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(url);
  await page.waitForSelector(SETTLED, { timeout: 60_000 });
  return { page, errors };
}

const state = (page: Page) => page.getAttribute("body", "data-state");
const waitIdle = (page: Page) =>
  page.waitForSelector('body:not([data-state="busy"])', { timeout: 120_000 });

/** The page's notion of a page asset: anything the server routes other than an image. */
function isPageAsset(path: string): boolean {
  return path === "/" || path === "/style.css" || /^\/app\.js(\.map)?$/.test(path) ||
    /^\/kernels\/((generated|include)\/)?[a-z0-9_]+\.(wgsl|json)$/.test(path) ||
    /^\/checkpoint\/best\.(json|safetensors)$/.test(path) ||
    /^\/checkpoint\/keypoints\/(keypoints\.json|(keypoints|handedness)\.safetensors)$/.test(path) ||
    /^\/vendor\/imagescript\/any\/(jpeg|png)\.wasm$/.test(path);
}

const browserTest = (name: string, fn: (f: Fixture) => Promise<void>, ignore = false) =>
  Deno.test({
    name,
    ignore: problem !== null || ignore,
    // The browser, esbuild and the GPU keep resources across cases by design.
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      if (!sysAllowed) {
        throw new Error("the browser tests need --allow-sys (playwright-core reads os info)");
      }
      await fn(await setUp());
    },
  });

/** `deno task predict IMAGE --sex F --age 130 --checkpoint RUN --json`, parsed. */
async function predictCli(checkpoint: string, image: string) {
  const out = await deno([
    "task",
    "predict",
    image,
    ...["--sex", "F", "--age", "130", "--checkpoint", checkpoint, "--json"],
  ]);
  return JSON.parse(out.trim().split("\n").at(-1)!) as {
    bone_age_months: number;
    difference_months: number;
    uncertainty_months: number;
  };
}

/** Opens `image` in the page, estimates for a girl of 130 months, checks it against the CLI. */
async function compareWithCli(page: Page, image: string, checkpoint: string): Promise<void> {
  const cli = await predictCli(checkpoint, image);
  await page.setInputFiles("#file", image);
  await waitIdle(page);
  assert.equal(
    await page.isHidden("#file-error"),
    true,
    await page.textContent("#file-error") ?? "",
  );
  await page.check('input[name="sex"][value="F"]');
  await page.fill("#age", "130");
  await page.click("#estimate");
  await page.waitForSelector('body[data-state="done"], #form-error:not([hidden])', {
    timeout: 180_000,
  });
  assert.equal(
    await page.isHidden("#form-error"),
    true,
    await page.textContent("#form-error") ?? "",
  );
  const printed = Number(await page.textContent("#months"));
  assert.ok(
    Math.abs(printed - cli.bone_age_months) <= 0.1,
    `${image}: the page says ${printed} months, deno task predict ${cli.bone_age_months}`,
  );
  console.log(`  ${image.split("/").at(-1)}: page ${printed}, CLI ${cli.bone_age_months} months`);
  const difference = Number(await page.getAttribute("#difference", "data-difference"));
  assert.ok(Math.abs(difference - cli.difference_months) <= 0.1);
  assert.match(
    (await page.textContent("#uncertainty"))!,
    new RegExp(`± ${cli.uncertainty_months.toFixed(1)} months`),
  );
}

browserTest("browser: the page's estimate equals deno task predict", async (f) => {
  const server = await serve(f, f.run);
  try {
    const { page, errors } = await openPage(f, server.url);
    assert.equal(await state(page), "ready");

    // Keyboard: the file input, the sex, the age and the button come in this order by Tab.
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      await page.keyboard.press("Tab");
      const focused = page.locator(":focus");
      order.push(
        await focused.getAttribute("id") ??
          `${await focused.getAttribute("name")}=${await focused.getAttribute("value")}`,
      );
    }
    assert.deepEqual(order, ["file", "sex=F", "age", "estimate"]);
    assert.equal(await page.getByLabel("Hand radiograph (PNG or JPEG, any size)").count(), 1);
    assert.equal(await page.getByLabel("Female").count(), 1);
    assert.match((await page.textContent("body"))!, /not a medical device/i);

    // A full-resolution PNG from the RSNA sample.
    await compareWithCli(page, radiograph!, f.run);
    const extent = await page.locator("html").evaluate(
      (html: { scrollWidth: number; scrollHeight: number }) => ({
        width: html.scrollWidth,
        height: html.scrollHeight,
      }),
    );
    assert.ok(
      extent.width <= LAPTOP.width && extent.height <= LAPTOP.height,
      `the page needs ${extent.width}x${extent.height} pixels, more than a 1366x768 laptop`,
    );
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "browser-reader.png") });

    // A JPEG (through imagescript's wasm decoder, as in the CLI): Chromium's own JPEG of the
    // radiograph as the page draws it, heatmap off.
    await page.uncheck("#show-heatmap");
    const jpeg = join(f.dir, "radiograph.jpg");
    await page.locator("#view").screenshot({ path: jpeg, type: "jpeg", quality: 90 });
    await compareWithCli(page, jpeg, f.run);

    // Not an image: a plain message, and the page stays usable.
    await page.setInputFiles("#file", {
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("not a radiograph"),
    });
    await waitIdle(page);
    const message = await page.textContent("#file-error");
    assert.match(message!, /“notes\.txt” is not an image this reader can open/);
    assert.equal(await page.isDisabled("#file"), false);
    assert.deepEqual(errors, []);
    await page.context().close();
  } finally {
    await server.shutdown();
  }
  // The radiographs never left the browser: only GETs of the page's own assets.
  const requests = server.log.map((line) => line.split(" ").slice(1, 3));
  assert.ok(
    requests.some(([, path]) => path === "/vendor/imagescript/any/jpeg.wasm"),
    "the JPEG was not decoded by imagescript's wasm decoder",
  );
  for (const [method, path] of requests) {
    assert.ok(method === "GET" || method === "HEAD", `unexpected ${method} ${path}`);
    assert.ok(isPageAsset(path), `request for something other than a page asset: ${path}`);
  }
}, radiograph === null);

browserTest("browser: the shipped registered model finds the hand as predict does", async (f) => {
  const server = await serve(f, SHIPPED);
  try {
    const { page, errors } = await openPage(f, server.url);
    assert.equal(await state(page), "ready", await page.textContent("#fatal") ?? "");
    await compareWithCli(page, radiograph!, SHIPPED);
    assert.match((await page.textContent("#input-caption"))!, /registered upright/);
    assert.doesNotMatch((await page.textContent("#input-caption"))!, /right hand/);
    await page.screenshot({ path: join(SCREENSHOTS, "browser-registered.png") });
    // The same radiograph mirrored, as a right hand looks: told so, mirrored back, and read
    // as deno task predict reads it.
    const gray = await decodeGray(await Deno.readFile(radiograph!));
    const right = join(f.dir, "right-hand.png");
    const flipped = new Uint8Array(gray.width * gray.height);
    for (let y = 0; y < gray.height; y++) {
      for (let x = 0; x < gray.width; x++) {
        flipped[y * gray.width + x] = gray.data[y * gray.width + gray.width - 1 - x];
      }
    }
    await Deno.writeFile(right, encodeGrayPng(flipped, gray.width, gray.height));
    await compareWithCli(page, right, SHIPPED);
    assert.match((await page.textContent("#input-caption"))!, /a right hand, mirrored/);
    // Noise is no hand: the page says so and shows no estimate.
    const noise = join(f.dir, "noise.png");
    const r = rng(3);
    await Deno.writeFile(
      noise,
      encodeGrayPng(Uint8Array.from({ length: 200 * 160 }, () => Math.floor(r() * 256)), 200, 160),
    );
    await page.setInputFiles("#file", noise);
    await waitIdle(page);
    assert.match((await page.textContent("#file-error"))!, /No hand was found in this radiograph/);
    assert.deepEqual(errors, []);
    await page.context().close();
  } finally {
    await server.shutdown();
  }
}, radiograph === null || shipped === null);

browserTest("browser: a browser without WebGPU is told how to enable it", async (f) => {
  const server = await serve(f, f.run);
  try {
    const { page } = await openPage(
      f,
      server.url,
      "Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });",
    );
    assert.equal(await state(page), "error");
    const text = (await page.textContent("#fatal"))!;
    assert.match(text, /WebGPU is not available/);
    assert.match(text, /chrome:\/\/flags\/#enable-unsafe-webgpu/);
    assert.equal(await page.isDisabled("#file"), true);
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "browser-no-webgpu.png") });
    await page.context().close();
  } finally {
    await server.shutdown();
  }
});

browserTest("browser: a missing or mismatched checkpoint gets a clear message", async (f) => {
  // Same weights, but a description that asks for a wider dense layer.
  const wrong = join(f.dir, "wrong");
  await Deno.mkdir(wrong, { recursive: true });
  const meta = JSON.parse(await Deno.readTextFile(join(f.run, "best.json")));
  meta.config.dense = [24];
  await Deno.writeTextFile(join(wrong, "best.json"), JSON.stringify(meta));
  await Deno.copyFile(join(f.run, "best.safetensors"), join(wrong, "best.safetensors"));
  // The right description, weights of another shape.
  const shapes = join(f.dir, "wrong-shapes");
  await Deno.mkdir(shapes, { recursive: true });
  await Deno.copyFile(join(f.run, "best.json"), join(shapes, "best.json"));
  const { tensors, metadata } = decodeSafetensors(
    await Deno.readFile(join(f.run, "best.safetensors")),
  );
  tensors.set("head.0.weight", { shape: [24, 17], data: new Float32Array(24 * 17).fill(0.1) });
  await Deno.writeFile(join(shapes, "best.safetensors"), encodeSafetensors(tensors, metadata));
  for (
    const [checkpoint, expected] of [
      [wrong, /config differs from the "tiny" configuration/],
      [shapes, /does not match the "tiny" model: .*head\.0\.weight/],
      [undefined, /has no checkpoint.*--checkpoint RUN_DIR/],
    ] as const
  ) {
    const server = await serve(f, checkpoint);
    try {
      const { page } = await openPage(f, server.url);
      assert.equal(await state(page), "error");
      const text = (await page.textContent("#fatal"))!;
      assert.match(text, /The checkpoint cannot be used/);
      assert.match(text, expected);
      await page.context().close();
    } finally {
      await server.shutdown();
    }
  }
});

// Last: close the browser and remove the temp folder once every case has run.
Deno.test({
  name: "browser: clean up",
  ignore: problem !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    if (!fixture) return;
    const f = await fixture;
    await f.browser.close();
    await Deno.remove(f.dir, { recursive: true });
  },
});
