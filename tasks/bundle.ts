/**
 * `deno task bundle`: builds the web page's script from `web/app.ts` and the same `src/`
 * engine the CLI runs, with esbuild, into `.cache/web/` (git-ignored), where
 * `deno task serve` serves it.
 *
 *     deno task bundle [--out DIR]
 *
 * No kernel is copied: the page fetches `kernels/*.wgsl` from the server. What the browser
 * cannot run is mapped, not forked:
 *
 * - `node:zlib` (the PNG decoder's inflate) -> `src/app/browser/zlib.ts` (fflate, exact);
 * - imagescript's wasm JPEG/PNG glue runs unchanged, with `fs`/`path` ->
 *   `src/app/browser/node_shims.ts`, which fetches the same `.wasm` files this step copies next
 *   to the bundle.
 *
 * Any other Node built-in fails the build. The page imports single functions from modules that
 * also hold Deno-only code (e.g. `predictMonths` from `src/app/training.ts`); esbuild's tree
 * shaking leaves the unused functions out. The `Deno.` references that remain must be the
 * {@link KNOWN_DENO_REFERENCES} (code paths the page never takes): the build warns about any
 * other module, and the browser test fails on it.
 *
 * @module
 */
// Types only here: esbuild itself is loaded when a build runs, so that `deno task serve`,
// which imports this module's paths, needs no --allow-env or --allow-run.
import type * as esbuild from "npm:esbuild@0.25.9";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCommandLine, type TaskHelp } from "./cli.ts";
// Imported for its side effect on `deno run`: it makes Deno install fflate into
// node_modules/, where the esbuild resolver below finds it.
import "../src/app/browser/zlib.ts";
import { WASM_GLUE_DIR } from "../src/app/browser/node_shims.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where `deno task bundle` writes and `deno task serve` reads. */
export const DEFAULT_BUNDLE_DIR = join(ROOT, ".cache", "web");
/** The page's entry module. */
const ENTRY = join(ROOT, "web", "app.ts");
/** imagescript's wasm decoders that `decodeGray` may load (JPEG; interlaced PNG). */
const WASM_FILES = ["jpeg.wasm", "png.wasm"];

/** Modules whose bundled code still names `Deno`, on paths the page never takes, with why. */
export const KNOWN_DENO_REFERENCES: Readonly<Record<string, string>> = {
  "src/engine/engine.ts": "readKernelFile, the default kernel loader (the page passes its own)",
  "src/data/image.ts": "wasmCodec's permission check, reached only when a decoder fails to load",
  "src/ops/conv2d_kernels.ts": "the kernel generator, run only as a script (import.meta.main)",
};

/** What one build produced. */
export interface BundleResult {
  /** Output folder. */
  outDir: string;
  /** Files written, relative to `outDir`, with their sizes in bytes. */
  files: Record<string, number>;
  /** Source modules whose code in the bundle still names `Deno` (see {@link denoReferences}). */
  denoReferences: string[];
}

/** Folder of an npm package that Deno installed under `node_modules/.deno/`. */
function npmPackageDir(name: string, version: string): string {
  const store = join(ROOT, "node_modules", ".deno");
  const prefix = `${name.replace("/", "+")}@`;
  const exact = `${prefix}${version}`;
  const candidates = [...Deno.readDirSync(store)]
    .map((e) => e.name)
    .filter((n) => n === exact || (n.startsWith(prefix) && /^[\^~]/.test(version)))
    .sort();
  const found = candidates.at(-1);
  if (!found) {
    throw new Error(
      `npm:${name}@${version} is not installed under node_modules/.deno (run \`deno install\`)`,
    );
  }
  return join(store, found, "node_modules");
}

/** The deno.json import map, which maps e.g. `imagescript/` to `npm:/imagescript@1.3.1/`. */
function importMap(): Record<string, string> {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  return config.imports ?? {};
}

/** esbuild resolution for what Deno resolves itself: npm: specifiers and deno.json imports. */
function denoResolver(): esbuild.Plugin {
  const imports = importMap();
  const shims = join(ROOT, "src", "app", "browser", "node_shims.ts");
  return {
    name: "bone-age-browser",
    setup(build) {
      build.onResolve({ filter: /^node:zlib$/ }, () => ({
        path: join(ROOT, "src", "app", "browser", "zlib.ts"),
      }));
      build.onResolve({ filter: /^(fs|path)$/ }, (args) => {
        if (!args.importer.includes(`${"/"}imagescript${"/"}wasm${"/"}node${"/"}`)) {
          return { errors: [{ text: `"${args.path}" is a Node built-in (no browser mapping)` }] };
        }
        return { path: shims };
      });
      build.onResolve({ filter: /^node:/ }, (args) => ({
        errors: [{
          text: `${args.path} is a Node built-in; ${
            relative(ROOT, args.importer)
          } cannot run in the browser`,
        }],
      }));
      build.onResolve({ filter: /^npm:/ }, (args) => {
        const m = /^npm:\/?((?:@[^/]+\/)?[^@/]+)@([^/]+)(\/.*)?$/.exec(args.path);
        if (!m) return { errors: [{ text: `cannot parse ${args.path}` }] };
        const [, name, version, sub = ""] = m;
        // `inPackage` makes the bare-specifier rule below stand aside: this resolution is
        // esbuild's own, inside the package folder (else "imagescript/x" would loop).
        return build.resolve(name + sub, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: npmPackageDir(name, version),
          pluginData: { inPackage: true },
        });
      });
      // Bare specifiers from our own modules go through deno.json's import map.
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (args.pluginData?.inPackage || args.importer.includes("node_modules")) return undefined;
        for (const [key, target] of Object.entries(imports)) {
          const hit = key.endsWith("/") ? args.path.startsWith(key) : args.path === key;
          if (hit) {
            return build.resolve(target + args.path.slice(key.length), {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
            });
          }
        }
        return undefined;
      });
    },
  };
}

/**
 * The source modules (as esbuild labels them, e.g. `src/engine/engine.ts`) whose bundled code
 * mentions the `Deno` global. esbuild's unminified output starts each module with a
 * `// path` comment, so a reference belongs to the last such comment above it.
 */
export function denoReferences(js: string): string[] {
  const found = new Set<string>();
  let module = "";
  for (const line of js.split("\n")) {
    const header = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(line);
    if (header) module = header[1];
    else if (/\bDeno\./.test(line.replace(/\/\/.*$/, ""))) found.add(module);
  }
  return [...found].sort();
}

/** Builds `web/app.ts` into `outDir` (default `.cache/web/`) with its decoder wasm files. */
export async function buildBrowserBundle(outDir = DEFAULT_BUNDLE_DIR): Promise<BundleResult> {
  const esbuild = await import("npm:esbuild@0.25.9");
  try {
    const result = await esbuild.build({
      entryPoints: [ENTRY],
      outfile: join(outDir, "app.js"),
      absWorkingDir: ROOT,
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      sourcemap: "linked",
      write: false,
      logLevel: "silent",
      plugins: [denoResolver()],
      define: {
        __dirname: JSON.stringify(WASM_GLUE_DIR),
        "process.env.IMAGESCRIPT_WASM_SIMD": "undefined",
      },
    });
    for (const w of result.warnings) console.error(`bundle warning: ${w.text}`);
    await Deno.mkdir(join(outDir, "vendor", "imagescript", "any"), { recursive: true });
    const files: Record<string, number> = {};
    let js = "";
    for (const file of result.outputFiles) {
      await Deno.writeFile(file.path, file.contents);
      files[relative(outDir, file.path)] = file.contents.length;
      if (file.path.endsWith(".js")) js = file.text;
    }
    const wasmSource = join(ROOT, "node_modules", "imagescript", "wasm", "any");
    const wasmTarget = join(outDir, dirname(WASM_GLUE_DIR), "any");
    for (const name of WASM_FILES) {
      await Deno.copyFile(join(wasmSource, name), join(wasmTarget, name));
      files[relative(outDir, join(wasmTarget, name))] = (await Deno.stat(join(wasmTarget, name)))
        .size;
    }
    return { outDir, files, denoReferences: denoReferences(js) };
  } finally {
    await esbuild.stop();
  }
}

/** `deno task bundle --help`. */
export const HELP: TaskHelp = {
  usage: "deno task bundle [--out DIR]",
  about:
    `Builds the reader page's script (web/app.ts and the same src/ engine, with esbuild) and the
image decoders' wasm into DIR (default .cache/web/), where deno task serve serves them.`,
  examples: ["deno task bundle"],
};

if (import.meta.main) {
  const { values } = parseCommandLine(Deno.args, { out: { type: "string" } }, HELP);
  try {
    const result = await buildBrowserBundle(values.out ?? DEFAULT_BUNDLE_DIR);
    for (const [name, bytes] of Object.entries(result.files)) {
      console.log(
        `  ${join(relative(ROOT, result.outDir), name)}  ${(bytes / 1024).toFixed(0)} KiB`,
      );
    }
    const unexpected = result.denoReferences.filter((m) => !(m in KNOWN_DENO_REFERENCES));
    for (const module of unexpected) {
      console.error(`  warning: ${module} names Deno in the browser bundle (not expected)`);
    }
  } catch (err) {
    console.error(`error: bundling the web page failed: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
