/**
 * `fs` and `path` for imagescript's wasm decoder glue (`imagescript/wasm/node/{jpeg,png}.js`)
 * in the browser bundle. The glue runs unchanged: it calls
 * `readFile(join(__dirname, "../any/jpeg.wasm"))`, the bundler defines `__dirname` as
 * {@link WASM_GLUE_DIR}, and `readFile` fetches that path from the page's server, which
 * serves the very `.wasm` files the CLI loads from `node_modules/`. Same decoder, same pixels.
 *
 * @module
 */

/** What the bundler substitutes for `__dirname` in the glue (a path relative to the page). */
export const WASM_GLUE_DIR = "vendor/imagescript/node";

/** `path.join` for relative, slash-separated paths: joins and resolves `.` and `..`. */
export function join(...parts: string[]): string {
  const out: string[] = [];
  for (const segment of parts.join("/").split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  return out.join("/");
}

/** `fs.promises.readFile`, answered by a same-origin fetch of the path. */
export const promises = {
  async readFile(path: string): Promise<Uint8Array> {
    const response = await fetch(path);
    if (!response.ok) {
      throw new Error(`could not load the image decoder ${path}: HTTP ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  },
};
