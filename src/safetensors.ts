/**
 * Reading and writing the safetensors format (the file PyTorch's `safetensors.torch.load_file`
 * opens): an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian data. Only F32 is used here.
 *
 * @module
 */

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

/** Parses safetensors bytes; `source` names the file in error messages. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = "safetensors",
): { tensors: Map<string, NamedArray>; metadata: Record<string, string> } {
  if (bytes.length < 8) throw new Error(`${source}: too short to be a safetensors file`);
  const headerLength = Number(
    new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true),
  );
  if (8 + headerLength > bytes.length) {
    throw new Error(`${source}: header length ${headerLength} exceeds the file size`);
  }
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw new Error(`${source}: header is not JSON (${(err as Error).message})`);
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, NamedArray>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    if (entry.dtype !== "F32") {
      throw new Error(`${source}: ${name} has dtype ${entry.dtype}, want F32`);
    }
    const [begin, end] = entry.data_offsets;
    if (
      dataStart + end > bytes.length || end - begin !== entry.shape.reduce((a, b) => a * b, 1) * 4
    ) {
      throw new Error(
        `${source}: ${name} has a byte range that does not match its shape or the file`,
      );
    }
    const copy = bytes.slice(dataStart + begin, dataStart + end);
    tensors.set(name, { shape: entry.shape, data: new Float32Array(copy.buffer) });
  }
  return { tensors, metadata };
}
