/**
 * Worker entry: preprocesses batches posted by the loader's pool ({@link runDecodeRequest}).
 *
 * @module
 */
import { type DecodeRequest, runDecodeRequest } from "./decode_job.ts";

// Typed by hand so this file checks under the default (window) lib as well.
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<DecodeRequest>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
};

scope.onmessage = async (e) => {
  const res = await runDecodeRequest(e.data);
  const transfer = res.outcomes.flatMap((o) => (o.ok ? [o.pixels.buffer as ArrayBuffer] : []));
  scope.postMessage(res, transfer);
};
