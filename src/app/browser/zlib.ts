/**
 * The three functions of `node:zlib` that `src/data/png.ts` uses, for the browser bundle.
 * `tasks/bundle.ts` maps `node:zlib` here, so the PNG decoder the CLI runs is the one the
 * page runs. Browsers only offer an asynchronous `DecompressionStream`, while `decodePng` is
 * synchronous, so this uses fflate. Inflating is exact (a zlib stream has one decoding), so
 * the page decodes every PNG to the same pixels as `deno task predict`.
 *
 * @module
 */
// Pinned inline: deno.json's import map is not this module's to extend.
import { unzlibSync, zlibSync } from "npm:fflate@0.8.2";

/**
 * Decompresses a zlib stream (node's `zlib.inflateSync`). With `maxOutputLength` it inflates
 * into a buffer of that size, so memory stays bounded, and fails, as node does, when the
 * stream holds more.
 */
export function inflateSync(
  data: Uint8Array,
  options: { maxOutputLength?: number } = {},
): Uint8Array {
  const max = options.maxOutputLength;
  if (max === undefined) return unzlibSync(data);
  // One byte of room past the limit tells a stream that fits from one that does not.
  const out = unzlibSync(data, { out: new Uint8Array(max + 1) });
  if (out.length > max) {
    throw Object.assign(new Error(`Cannot create a Buffer larger than ${max} bytes`), {
      code: "ERR_BUFFER_TOO_LARGE",
    });
  }
  return out;
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 of `data` (node's `zlib.crc32`), as PNG chunks carry it. */
export function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Compresses into a zlib stream (node's `zlib.deflateSync`; level 6 is node's default). */
export function deflateSync(data: Uint8Array): Uint8Array {
  return zlibSync(data, { level: 6 });
}
