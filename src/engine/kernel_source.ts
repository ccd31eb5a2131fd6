/**
 * A kernel's source as the engine compiles it, and its interface.
 *
 * - {@link expandIncludes}: `#include "name.wgsl"` lines pull in a shared snippet from
 *   `kernels/include/` through the engine's kernel loader (files in Deno, the fetched set in
 *   the browser), so helpers shared by several kernels are written once.
 * - {@link parseKernelInterface}: the storage buffers of group 0 by name and access, and the
 *   workgroup size of each entry point. The engine reads it once per kernel, builds the
 *   bind-group layout from it, and checks every launch against it, so a program that binds
 *   the wrong buffers fails naming the binding instead of computing garbage.
 *
 * @module
 */

const INCLUDE_LINE = /^#include\b.*$/gm;
const INCLUDE = /^#include\s+"([a-z0-9_]+\.wgsl)"(?:\s+for\s+(\w+(?:\s*,\s*\w+)*))?\s*$/;

/**
 * `source` with every `#include "name.wgsl"` line replaced by `include/name.wgsl`, and every
 * `#include "name.wgsl" for a, b` line by one copy of that snippet per listed name, its
 * `NAME` replaced by the name (the snippet is a template over one tensor). Snippets do not
 * include others. Throws naming the file and the line when a directive is malformed.
 */
export function expandIncludes(
  file: string,
  source: string,
  load: (file: string) => string,
): string {
  return source.replace(INCLUDE_LINE, (line) => {
    const match = INCLUDE.exec(line);
    if (!match) {
      throw new Error(
        `${file}: cannot read "${line}" (write #include "name.wgsl", or ... for a, b)`,
      );
    }
    const snippetFile = `include/${match[1]}`;
    const snippet = load(snippetFile);
    if (/^#include\b/m.test(snippet)) {
      throw new Error(`${snippetFile} (included by ${file}) includes another file`);
    }
    if (match[2] === undefined) return snippet;
    if (!snippet.includes("NAME")) {
      throw new Error(`${file}: ${snippetFile} has no NAME to replace in "${line}"`);
    }
    return match[2].split(",").map((name) => snippet.replaceAll("NAME", name.trim())).join("\n");
  });
}

/** One `@group(0) @binding(i) var<storage, ...> name` declaration. */
export interface KernelBinding {
  name: string;
  /** `read` for inputs, `read_write` for outputs. */
  access: "read" | "read_write";
}

/** What {@link parseKernelInterface} finds in a kernel. */
export interface KernelInterface {
  file: string;
  /** Bindings in `@binding` order (0, 1, 2, ... without gaps). */
  bindings: KernelBinding[];
  /** Whether it declares `override WG`, which the engine then sets (see `Program`). */
  overridesWG: boolean;
  /** `@workgroup_size` of each entry point, as written: numbers or override names. */
  workgroupSize: Record<string, (number | string)[]>;
  /** Default values of its `override` constants that have one. */
  overrideDefaults: Record<string, number>;
}

const BINDING =
  /@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var<\s*storage\s*,\s*(read|read_write)\s*>\s*(\w+)/g;
const ENTRY = /@compute\s+@workgroup_size\(([^)]*)\)\s*fn\s+(\w+)/g;
const OVERRIDE_DEFAULT = /override\s+(\w+)\s*(?::\s*\w+)?\s*=\s*([0-9.eE+-]+)/g;

/** Reads a kernel's interface from its source; throws naming the file when it is unusable. */
export function parseKernelInterface(file: string, source: string): KernelInterface {
  // Comments may mention declarations; only code counts.
  const code = source.replace(/\/\/[^\n]*/g, "");
  const found: (KernelBinding | undefined)[] = [];
  for (const [, index, access, name] of code.matchAll(BINDING)) {
    const i = Number(index);
    if (found[i]) throw new Error(`${file}: @binding(${i}) is declared twice`);
    found[i] = { name, access: access as KernelBinding["access"] };
  }
  const bindings = Array.from(found, (b, i) => {
    if (!b) throw new Error(`${file}: @binding(${i}) is missing (bindings must be 0, 1, 2, ...)`);
    return b;
  });
  const workgroupSize: KernelInterface["workgroupSize"] = {};
  for (const [, size, entry] of code.matchAll(ENTRY)) {
    workgroupSize[entry] = size.split(",").map((s) => s.trim()).filter(Boolean).map((s) =>
      /^\d+u?$/.test(s) ? parseInt(s) : s
    );
  }
  const overrideDefaults: Record<string, number> = {};
  for (const [, name, value] of code.matchAll(OVERRIDE_DEFAULT)) {
    overrideDefaults[name] = parseFloat(value);
  }
  return {
    file,
    bindings,
    overridesWG: /\boverride\s+WG\b/.test(code),
    workgroupSize,
    overrideDefaults,
  };
}

/**
 * The `@workgroup_size` of `entry`, literal sizes as written and override names from
 * `constants` or the override's default. Throws naming the kernel when it cannot be known.
 */
export function resolveWorkgroupSize(
  kernel: KernelInterface,
  entry: string,
  constants: Readonly<Record<string, number>>,
): [number, number, number] {
  const sizes = kernel.workgroupSize[entry];
  if (!sizes) throw new Error(`${kernel.file}: no @compute entry point named "${entry}"`);
  const [x = 1, y = 1, z = 1] = sizes.map((s) => {
    if (typeof s === "number") return s;
    const v = constants[s] ?? kernel.overrideDefaults[s];
    if (v === undefined) throw new Error(`${kernel.file}: workgroup size ${s} has no value`);
    return v;
  });
  return [x, y, z];
}

/**
 * The buffers of `given` in the kernel's binding order. Throws naming the kernel and the
 * binding when one is missing or one is given that the kernel does not declare.
 */
export function orderBindings<T>(
  kernel: KernelInterface,
  given: Readonly<Record<string, T>>,
): T[] {
  const names = kernel.bindings.map((b) => b.name);
  for (const name of Object.keys(given)) {
    if (!names.includes(name)) {
      throw new Error(
        `${kernel.file}: no binding named "${name}" (it declares ${names.join(", ")})`,
      );
    }
  }
  return kernel.bindings.map(({ name }, i) => {
    const buffer = given[name];
    if (buffer === undefined) {
      throw new Error(`${kernel.file}: binding "${name}" (@binding(${i})) is not given`);
    }
    return buffer;
  });
}
