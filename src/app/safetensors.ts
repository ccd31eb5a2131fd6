/**
 * Reading and writing the safetensors format (the file PyTorch's `safetensors.torch.load_file`
 * opens): an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian data. Only F32 is used here.
 *
 * @module
 */
import { DataError } from "../data/report.ts";

/** A named float32 array with its shape. */
export interface NamedArray {
  /** Extents, outermost first. */
  shape: number[];
  /** Values in row-major order. */
  data: Float32Array;
}

/** Serializes `tensors` (insertion order kept) and string `metadata` to safetensors bytes. */
export function encodeSafetensors(
  tensors: Map<string, NamedArray>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    const expected = shape.reduce((a, b) => a * b, 1);
    if (expected !== data.length) {
      throw new Error(`safetensors: ${name} has ${data.length} values for shape [${shape}]`);
    }
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8); // keeps the data 8-byte aligned
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const { data } of tensors.values()) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
}

/** The largest JSON header read (PyTorch's own reader stops at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

/**
 * Parses safetensors bytes, checking everything before trusting it: the header is a JSON
 * object of entry objects; each entry has dtype F32, a shape of non-negative integers and
 * integer offsets `0 <= begin <= end <= data length` spanning exactly shape x 4 bytes, with no
 * two entries overlapping; `__metadata__` maps strings to strings. Every failure is a
 * {@link DataError} naming `source` and the tensor.
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "safetensors",
): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  const bad = (what: string): never => {
    throw new DataError(`not a valid safetensors file: ${what}`, source);
  };
  if (bytes.length < 8) bad("too short");
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    bad(`header length ${headerLength} exceeds the file or ${MAX_HEADER_BYTES} bytes`);
  }
  const dataStart = 8 + Number(headerLength);
  const dataLength = bytes.length - dataStart;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, dataStart),
    ));
  } catch (err) {
    bad(`header is not JSON (${(err as Error).message})`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(header)) return bad("header is not a JSON object");
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(entry) || !Object.values(entry).every((v) => typeof v === "string")) {
        bad("__metadata__ is not an object of strings");
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const tensorBad = (what: string): never => bad(`tensor "${name}": ${what}`);
    if (!isObject(entry)) tensorBad("entry is not an object");
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (dtype !== "F32") tensorBad(`dtype ${JSON.stringify(dtype)}, want F32`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      tensorBad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      tensorBad(`data_offsets ${JSON.stringify(offsets)} are not two non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (begin > end || end > dataLength) {
      tensorBad(`bytes ${begin}..${end} lie outside the ${dataLength} bytes of data`);
    }
    if (end - begin !== count * 4) {
      tensorBad(`bytes ${begin}..${end} do not hold shape [${shape}] of F32`);
    }
    ranges.push([begin, end, name]);
    const copy = bytes.slice(dataStart + begin, dataStart + end);
    tensors.set(name, { shape: shape as number[], data: new Float32Array(copy.buffer) });
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      bad(`tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`);
    }
  }
  return { tensors, metadata };
}
