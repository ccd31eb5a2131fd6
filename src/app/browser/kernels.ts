/**
 * The browser's {@link KernelLoader}: the engine reads WGSL synchronously by file name, so
 * the page fetches every kernel once, before the engine is built, from the server's
 * `kernels/` route, which serves the repository's `kernels/*.wgsl` files as they are.
 *
 * @module
 */
import type { KernelLoader } from "../../engine/engine.ts";

/** The server's list of kernel files, relative to the kernels URL. */
export const KERNEL_INDEX = "index.json";

/**
 * Fetches `index.json` and every `.wgsl` file it names below `base` (e.g. `"kernels/"`)
 * and returns a loader over them. Asking the loader for a file that was not listed throws,
 * naming the file, rather than compiling an empty shader.
 */
export async function fetchKernels(base: string | URL): Promise<KernelLoader> {
  const baseUrl = new URL(base, globalThis.location?.href);
  const get = async (name: string) => {
    const response = await fetch(new URL(name, baseUrl));
    if (!response.ok) throw new Error(`kernel ${name}: HTTP ${response.status}`);
    return response;
  };
  const names = await (await get(KERNEL_INDEX)).json() as string[];
  const sources = new Map<string, string>();
  await Promise.all(names.map(async (name) => sources.set(name, await (await get(name)).text())));
  return (file: string) => {
    const source = sources.get(file);
    if (source === undefined) {
      throw new Error(`kernel ${file} is not among the ${sources.size} kernels the server lists`);
    }
    return source;
  };
}
