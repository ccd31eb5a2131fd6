/**
 * The folders of `src/` are layers, and imports point down them only:
 *
 *     util.ts < engine/ < ops/ + ref/ < model/ < data/ < app/
 *
 * (`ops/` and `ref/`, an op and its float64 twin, are one layer.) A module may import its own
 * layer or a lower one; an import that points up fails here, naming both files.
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { PROJECT_ROOT } from "./helpers.ts";

const SRC = join(PROJECT_ROOT, "src");
const LAYERS = ["util.ts", "engine", "ops|ref", "model", "data", "app"];

/** The layer index of a file under src/ (by its first path segment). */
function layerOf(file: string): number {
  const top = relative(SRC, file).split("/")[0];
  const layer = LAYERS.findIndex((l) => l.split("|").includes(top));
  if (layer < 0) {
    throw new Error(`src/${relative(SRC, file)} is in no layer (${LAYERS.join(", ")})`);
  }
  return layer;
}

function* sources(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Relative module specifiers a file imports (static, dynamic and re-exports). */
export function importsOf(source: string): string[] {
  const found = source.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)"(\.[^"]+)"/g);
  return [...found].map((m) => m[1]);
}

Deno.test("imports in src/ point down the layers", () => {
  const upward: string[] = [];
  let checked = 0;
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    for (const spec of importsOf(Deno.readTextFileSync(file))) {
      const target = join(dirname(file), spec);
      if (!target.startsWith(SRC)) {
        upward.push(`src/${relative(SRC, file)} imports ${spec}, outside src/`);
        continue;
      }
      checked++;
      if (layerOf(target) > from) {
        upward.push(
          `src/${relative(SRC, file)} (${LAYERS[from]}) imports ${spec} (${
            LAYERS[layerOf(target)]
          })`,
        );
      }
    }
  }
  assert.ok(checked > 200, `only ${checked} imports checked`);
  assert.deepEqual(upward, [], "imports that point up the layers");
});

Deno.test("the layer check sees an upward import", () => {
  const source = 'import { x } from "../app/training.ts";\nconst y = await import("./z.ts");';
  assert.deepEqual(importsOf(source), ["../app/training.ts", "./z.ts"]);
  assert.ok(layerOf(join(SRC, "app", "training.ts")) > layerOf(join(SRC, "engine", "engine.ts")));
});
