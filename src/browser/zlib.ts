/**
 * The two functions of `node:zlib` that `src/data/png.ts` uses, for the browser bundle.
 * `tasks/bundle.ts` maps `node:zlib` here, so the PNG decoder the CLI runs is the one the
 * page runs. Browsers only offer an asynchronous `DecompressionStream`, while `decodePng` is
 * synchronous, so this uses fflate. Inflating is exact (a zlib stream has one decoding), so
 * the page decodes every PNG to the same pixels as `deno task predict`.
 *
 * @module
 */
// Pinned inline: deno.json's import map is not this module's to extend.
import { unzlibSync, zlibSync } from "npm:fflate@0.8.2";

/** Decompresses a zlib stream (node's `zlib.inflateSync`). */
export function inflateSync(data: Uint8Array): Uint8Array {
  return unzlibSync(data);
}

/** Compresses into a zlib stream (node's `zlib.deflateSync`; level 6 is node's default). */
export function deflateSync(data: Uint8Array): Uint8Array {
  return zlibSync(data, { level: 6 });
}
