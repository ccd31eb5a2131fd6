/**
 * Source generator of the fast 3x3 stride-1 convolution kernels, `kernels/conv2d_rows_*.wgsl`
 * (forward, and dL/dx as a forward pass over flipped weights) and `kernels/conv2d_wgrad_*.wgsl`
 * (dL/dw). The kernels keep one block of weights (or, for dL/dw, one block of weight
 * gradients) in named registers and walk output rows with a sliding window of input columns,
 * so every product is spelled out as its own statement; writing them by hand would be error
 * prone and WGSL has no way to unroll a loop into named registers, hence this generator.
 *
 * Why the kernels look like this, measured on Mesa lavapipe 22.3 (8 SIMD lanes per
 * invocation group): a storage-buffer load costs a loop over the 8 lanes with a bounds check
 * per component (about 40 instructions per lane for a vec4), `fma` is split into a multiply
 * and an add, private arrays indexed in loops are spilled to memory and indexed per lane, and
 * a `workgroupBarrier` turns the shader into a coroutine whose live values move to memory.
 * So the kernels (1) load each weight once per block and each input once per row walk,
 * (2) hold everything in plain variables, and (3) use no workgroup memory. Shapes are passed
 * in a small parameter buffer instead of override constants: these kernels take seconds to
 * compile on lavapipe, and one pipeline then serves every layer.
 *
 * Regenerate the files with `deno run --allow-write src/ops/conv2d_kernels.ts`; the test
 * `tests/conv2d_test.ts` fails when a file differs from what this module generates.
 *
 * @module
 */

/** Kernel size of the generated kernels (3x3, stride 1). */
const K = 3;
/**
 * Invocations per workgroup. Small, so that a dispatch has many workgroups: lavapipe hands
 * whole workgroups to its threads, and with a few large ones a thread that another process
 * delays leaves the others idle at the end.
 */
export const ROWS_WG = 16;

/**
 * One generated kernel. `vec4`: channels are read four at a time (the input channel count
 * must be a multiple of 4). `scalar`: one input channel per block, for images with 1 or 3
 * channels.
 */
export interface ConvKernelVariant {
  /** File name under `kernels/` (in `generated/`, apart from the hand-written kernels). */
  file: string;
  /** Which pass: "rows" (forward or dL/dx) or "wgrad" (dL/dw partial sums). */
  pass: "rows" | "wgrad";
  /** How input channels are read. */
  mode: "vec4" | "scalar";
  /** Input channels per block (a multiple of 4 in vec4 mode, 1 in scalar mode). */
  cinBlock: number;
  /** Output channels per invocation, as vec4s. */
  cout4Block: number;
  /** Output pixels per step of the row walk (their products are summed before use). */
  step: number;
  /** Output rows walked together (they share input rows). */
  rowsPerStep: number;
}

/**
 * The generated kernels; block sizes are the fastest of those measured on lavapipe (batch 32,
 * small-model layers). Rows: 16 output channels per invocation are 16 accumulator registers,
 * so each product is one multiply reading a weight from the stack and one add (32 channels
 * spill the accumulators, 16 input channels per block overflow L1 and take 50 s to compile).
 * Wgrad: its 3 * 3 * 8 * 8 sums live in memory, so two output rows per step load 4 input
 * rows for 2 * 3 rows' worth of products, about 30% faster than one row.
 */
export const CONV_KERNEL_VARIANTS: readonly ConvKernelVariant[] = [
  {
    file: "generated/conv2d_rows_vec4.wgsl",
    pass: "rows",
    mode: "vec4",
    cinBlock: 8,
    cout4Block: 4,
    step: 1,
    rowsPerStep: 1,
  },
  {
    file: "generated/conv2d_rows_scalar.wgsl",
    pass: "rows",
    mode: "scalar",
    cinBlock: 1,
    cout4Block: 4,
    step: 1,
    rowsPerStep: 1,
  },
  {
    file: "generated/conv2d_wgrad_vec4.wgsl",
    pass: "wgrad",
    mode: "vec4",
    cinBlock: 8,
    cout4Block: 2,
    step: 1,
    rowsPerStep: 2,
  },
  {
    file: "generated/conv2d_wgrad_scalar.wgsl",
    pass: "wgrad",
    mode: "scalar",
    cinBlock: 1,
    cout4Block: 4,
    step: 2,
    rowsPerStep: 2,
  },
];

const XYZW = "xyzw";

/** Parameter buffer layout shared by all generated kernels (three vec4<u32>). */
const PARAMS = `struct Params {
  // n, h, w, cin: input batch, height, width, channels
  a: vec4u,
  // cout, pad, oh, ow: output channels, zero padding, output height and width
  b: vec4u,
  // row groups per invocation, has bias (0 or 1), unused, unused
  c: vec4u,
}`;

const UNPACK = `  let N = params.a.x;
  let H = params.a.y;
  let W = params.a.z;
  let CIN = params.a.w;
  let COUT = params.b.x;
  let PAD = params.b.y;
  let OH = params.b.z;
  let OW = params.b.w;
  let R = params.c.x;
  let COUT4 = COUT / 4u;`;

/** Helpers that name the window, weight and accumulator registers. */
class Names {
  constructor(readonly v: ConvKernelVariant) {}
  /** vec4 groups (vec4 mode) or scalars (scalar mode) of one window cell. */
  get groups(): number {
    return this.v.mode === "vec4" ? this.v.cinBlock / 4 : 1;
  }
  /** Input rows of one step: the output rows' kernel rows overlap. */
  get inputRows(): number {
    return this.v.rowsPerStep + K - 1;
  }
  /**
   * Input column `col`, input row `q` (of the step's rows), channel group g: columns
   * 0 .. K-2 are the window kept from the previous step, K-1 .. K-2+step are loaded by it.
   */
  cell(col: number, q: number, g: number): string {
    return col < K - 1 ? `v${col}_${q}_${g}` : `c${col - (K - 1)}_${q}_${g}`;
  }
  /** Scalar input channel `k` of the block at input column col, input row q. */
  channel(col: number, q: number, k: number): string {
    return this.v.mode === "vec4"
      ? `${this.cell(col, q, k >> 2)}.${XYZW[k & 3]}`
      : this.cell(col, q, 0);
  }
}

/** Emits the statements that load window column `col` (an expression) into `prefix` names. */
function loadColumn(n: Names, indent: string, prefix: string, col: string): string[] {
  const L = [
    `${indent}let ix_${prefix} = ${col};`,
    `${indent}let okx_${prefix} = ix_${prefix} >= 0 && ix_${prefix} < i32(W);`,
    `${indent}let cx_${prefix} = u32(clamp(ix_${prefix}, 0, i32(W) - 1));`,
  ];
  for (let q = 0; q < n.inputRows; q++) {
    for (let g = 0; g < n.groups; g++) {
      const name = `${prefix}${q}_${g}`;
      const ok = `ok${q} && okx_${prefix} && cg${g}`;
      const load = n.v.mode === "vec4"
        ? `x[(rb${q} + cx_${prefix}) * CIN4 + ch * ${n.groups}u + ${g}u]`
        : `x[(rb${q} + cx_${prefix}) * CIN + ch]`;
      const zero = n.v.mode === "vec4" ? "vec4f(0.0)" : "0.0";
      L.push(`${indent}let ${name} = select(${zero}, ${load}, ${ok});`);
    }
  }
  return L;
}

/**
 * The row walk shared by both passes. An invocation owns R groups of `rowsPerStep` output
 * rows of one image each (groups are numbered over N * ceil(OH / rowsPerStep)); per group it
 * fills the window, then loops over the output pixels, `step` at a time. `pixel` is the code
 * of one step: output row v of the group is orow{v} (valid when rowOk{v}), pixel u of the
 * step is at ox + u (valid when ox + u < OW).
 */
function rowWalk(n: Names, pixel: string[]): string[] {
  const L: string[] = [];
  const U = n.v.step;
  const V = n.v.rowsPerStep;
  const ind = "    ";
  L.push(`${ind}for (var r = 0u; r < R; r++) {`);
  L.push(`${ind}  let grp = rr * R + r;`);
  L.push(`${ind}  let grpC = min(grp, GROUPS - 1u);`);
  L.push(`${ind}  let n = grpC / OHG;`);
  L.push(`${ind}  let oy = (grpC % OHG) * ${V}u;`);
  for (let v = 0; v < V; v++) {
    L.push(`${ind}  let rowOk${v} = live && grp < GROUPS && oy + ${v}u < OH;`);
    L.push(`${ind}  let orow${v} = n * OH + min(oy + ${v}u, OH - 1u);`);
  }
  for (let q = 0; q < n.inputRows; q++) {
    L.push(`${ind}  let iy${q} = i32(oy) - i32(PAD) + ${q};`);
    L.push(`${ind}  let ok${q} = iy${q} >= 0 && iy${q} < i32(H);`);
    L.push(`${ind}  let rb${q} = (n * H + u32(clamp(iy${q}, 0, i32(H) - 1))) * W;`);
  }
  // The window keeps K - 1 columns; each step loads `step` more.
  const zero = n.v.mode === "vec4" ? "vec4f(0.0)" : "0.0";
  for (let col = 0; col < K - 1; col++) {
    for (let q = 0; q < n.inputRows; q++) {
      for (let g = 0; g < n.groups; g++) L.push(`${ind}  var ${n.cell(col, q, g)} = ${zero};`);
    }
  }
  for (let col = 0; col < K - 1; col++) {
    L.push(`${ind}  {`);
    L.push(...loadColumn(n, `${ind}    `, `f${col}_`, `${col} - i32(PAD)`));
    for (let q = 0; q < n.inputRows; q++) {
      for (let g = 0; g < n.groups; g++) {
        L.push(`${ind}    ${n.cell(col, q, g)} = f${col}_${q}_${g};`);
      }
    }
    L.push(`${ind}  }`);
  }
  L.push(`${ind}  for (var ox = 0u; ox < OW; ox += ${U}u) {`);
  for (let u = 0; u < U; u++) {
    L.push(...loadColumn(n, `${ind}    `, `c${u}_`, `i32(ox) + ${K - 1 + u} - i32(PAD)`));
  }
  L.push(...pixel.map((line) => `${ind}    ${line}`));
  for (let col = 0; col < K - 1; col++) {
    for (let q = 0; q < n.inputRows; q++) {
      for (let g = 0; g < n.groups; g++) {
        L.push(`${ind}    ${n.cell(col, q, g)} = ${n.cell(col + U, q, g)};`);
      }
    }
  }
  L.push(`${ind}  }`);
  L.push(`${ind}}`);
  return L;
}

/** Block-channel validity flags: `cg{g}` says whether group g of the block exists. */
function channelFlags(n: Names): string[] {
  const L: string[] = [];
  for (let g = 0; g < n.groups; g++) {
    L.push(
      n.v.mode === "vec4"
        ? `    let cg${g} = ch * ${n.groups}u + ${g}u < CIN4;`
        : `    let cg${g} = true;`,
    );
  }
  return L;
}

function header(v: ConvKernelVariant, what: string[]): string {
  const lines = [
    `${v.file.slice(v.file.lastIndexOf("/") + 1)}: GENERATED by src/ops/conv2d_kernels.ts; ` +
    "edit the generator, not this file.",
    ...what,
  ];
  return lines.map((l) => `// ${l}`).join("\n");
}

/**
 * The shared start of a kernel: header comment, parameters, bindings (params and x first,
 * then `bindings`), and the shape values every kernel derives.
 */
function preamble(n: Names, what: string[], bindings: string[]): string[] {
  const v = n.v;
  const xType = v.mode === "vec4" ? "array<vec4f>" : "array<f32>";
  const blocks = v.mode === "vec4" ? `(CIN4 + ${n.groups - 1}u) / ${n.groups}u` : "CIN";
  return [
    header(v, what),
    "",
    PARAMS,
    "",
    `@group(0) @binding(0) var<storage, read> params: Params;`,
    `@group(0) @binding(1) var<storage, read> x: ${xType};`,
    ...bindings,
    "",
    `@compute @workgroup_size(${ROWS_WG})`,
    "fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {",
    UNPACK,
    ...(v.mode === "vec4" ? [`  let CIN4 = CIN / 4u;`] : []),
    `  let OHG = (OH + ${v.rowsPerStep - 1}u) / ${v.rowsPerStep}u;`,
    `  let GROUPS = N * OHG;`,
    `  let NCB = (COUT4 + ${v.cout4Block - 1}u) / ${v.cout4Block}u;`,
    `  let NBLOCKS = ${blocks};`,
    `  let i = gid.x + gid.y * nwg.x * ${ROWS_WG}u;`,
  ];
}

/** WGSL of a "rows" kernel: forward convolution (dL/dx reuses it with flipped weights). */
export function rowsKernel(v: ConvKernelVariant): string {
  const n = new Names(v);
  const CB = v.cinBlock;
  const C4 = v.cout4Block;
  const cinText = v.mode === "vec4" ? "read as vec4s: CIN % 4 == 0" : "read one float at a time";
  const what = [
    "3x3 stride-1 convolution, NHWC activations, HWIO weights:",
    "  y[n, oy, ox, co] = bias[co] + sum_{ky, kx, ci} x[n, oy + ky - PAD, ox + kx - PAD, ci] * w[ky, kx, ci, co]",
    "(zero outside the image). dL/dx is the same sum over dL/dy with weights flipped and transposed",
    "(see conv2d_flip_weights.wgsl) and padding 2 - PAD.",
    `Index math: invocation i = gid.x + gid.y * num_workgroups.x * ${ROWS_WG} -> cb = i % NCB, a block`,
    `of ${4 * C4} output channels, and rr = i / NCB, output rows [rr * R, rr * R + R) of the`,
    `flattened N * OH rows. For each block of ${CB} input channel${
      CB > 1 ? "s" : ""
    } (${cinText}),`,
    `the invocation loads the block's 3 * 3 * ${CB} * ${
      4 * C4
    } weights into registers, then walks its`,
    "rows left to right with a window of three input columns (one new column per output pixel)",
    "and adds the block's share into y: the first block writes bias + sum, later blocks read y",
    "and add. COUT % 4 == 0. Shapes come from `params` (see conv2d_kernels.ts for why).",
  ];
  const L = preamble(n, what, [
    `@group(0) @binding(2) var<storage, read> w: array<vec4f>;`,
    `@group(0) @binding(3) var<storage, read> bias: array<vec4f>;`,
    `@group(0) @binding(4) var<storage, read_write> y: array<vec4f>;`,
  ]);
  L.push(`  let HAS_BIAS = params.c.y != 0u;`);
  L.push(`  let total = ((GROUPS + R - 1u) / R) * NCB;`);
  L.push(`  let live = i < total;`);
  L.push(`  let cb = min(i, total - 1u) % NCB;`);
  L.push(`  let rr = min(i, total - 1u) / NCB;`);
  for (let j = 0; j < C4; j++) {
    L.push(`  let co${j} = min(cb * ${C4}u + ${j}u, COUT4 - 1u);`);
    L.push(`  let cok${j} = cb * ${C4}u + ${j}u < COUT4;`);
    L.push(`  let bias${j} = select(vec4f(0.0), bias[co${j}], HAS_BIAS);`);
  }
  L.push(`  for (var ch = 0u; ch < NBLOCKS; ch++) {`);
  L.push(...channelFlags(n));
  L.push(`    // The block's weights, zero for input channels past CIN.`);
  for (let t = 0; t < K * K; t++) {
    for (let k = 0; k < CB; k++) {
      const cin = `ch * ${CB}u + ${k}u`;
      for (let j = 0; j < C4; j++) {
        L.push(
          `    let w${t}_${k}_${j} = select(vec4f(0.0), w[(${t}u * CIN + min(${cin}, CIN - 1u)) * COUT4 + co${j}], ${cin} < CIN);`,
        );
      }
    }
  }
  const pixel: string[] = [];
  for (let r = 0; r < v.rowsPerStep; r++) {
    for (let u = 0; u < v.step; u++) {
      const s = (j: number) => `s${r}_${u}_${j}`;
      for (let j = 0; j < C4; j++) pixel.push(`var ${s(j)} = vec4f(0.0);`);
      for (let ky = 0; ky < K; ky++) {
        for (let kx = 0; kx < K; kx++) {
          for (let k = 0; k < CB; k++) {
            const xb = `vec4f(${n.channel(u + kx, r + ky, k)})`;
            for (let j = 0; j < C4; j++) {
              pixel.push(`${s(j)} = fma(${xb}, w${ky * K + kx}_${k}_${j}, ${s(j)});`);
            }
          }
        }
      }
      pixel.push(`let yo${r}_${u} = (orow${r} * OW + ox + ${u}u) * COUT4;`);
      for (let j = 0; j < C4; j++) {
        pixel.push(`if (rowOk${r} && ox + ${u}u < OW && cok${j}) {`);
        pixel.push(`  var prev = bias${j};`);
        pixel.push(`  if (ch > 0u) { prev = y[yo${r}_${u} + co${j}]; }`);
        pixel.push(`  y[yo${r}_${u} + co${j}] = prev + ${s(j)};`);
        pixel.push(`}`);
      }
    }
  }
  L.push(...rowWalk(n, pixel));
  L.push(`  }`);
  L.push(`}`);
  return L.join("\n") + "\n";
}

/** WGSL of a "wgrad" kernel: per-row-range partial sums of dL/dw. */
export function wgradKernel(v: ConvKernelVariant): string {
  const n = new Names(v);
  const CB = v.cinBlock;
  const C4 = v.cout4Block;
  const V = v.rowsPerStep;
  const channels = v.mode === "vec4" ? `${CB} input channels (vec4s)` : `${CB} input channel`;
  const pixels = v.step === 1 ? "one new column per pixel" : `${v.step} pixels per step`;
  const what = [
    "Partial sums of the 3x3 stride-1 weight gradient, NHWC activations, HWIO weights:",
    "  part[rr, ky, kx, ci, co] = sum over the output rows of range rr and all ox of",
    "                              x[n, oy + ky - PAD, ox + kx - PAD, ci] * dy[n, oy, ox, co]",
    "(zero outside the image); the host sums part over rr (sumMiddle) to get dL/dw.",
    `Index math: invocation i = gid.x + gid.y * num_workgroups.x * ${ROWS_WG} -> cb = i % NCB, a block`,
    `of ${4 * C4} output channels; t = i / NCB -> ch = t % NBLOCKS, a block of ${channels};`,
    "and rr = t / NBLOCKS, row groups [rr * R, rr * R + R), where group g is output rows",
    `[${V} * (g % OHG), ${V} * (g % OHG) + ${V}) of image g / OHG, OHG = ceil(OH / ${V}) (the rows of a`,
    `group share input rows). The invocation keeps its 3 * 3 * ${CB} * ${4 * C4} sums in registers`,
    `while it walks its groups left to right (a window of input columns, ${pixels}),`,
    "then writes them once. COUT % 4 == 0. Shapes come from `params` (see conv2d_kernels.ts",
    "for why).",
  ];
  const L = preamble(n, what, [
    `@group(0) @binding(2) var<storage, read> dy: array<vec4f>;`,
    `@group(0) @binding(3) var<storage, read_write> part: array<vec4f>;`,
  ]);
  L.push(`  let total = ((GROUPS + R - 1u) / R) * NBLOCKS * NCB;`);
  L.push(`  let live = i < total;`);
  L.push(`  let ic = min(i, total - 1u);`);
  L.push(`  let cb = ic % NCB;`);
  L.push(`  let ch = (ic / NCB) % NBLOCKS;`);
  L.push(`  let rr = ic / (NCB * NBLOCKS);`);
  for (let j = 0; j < C4; j++) {
    L.push(`  let co${j} = min(cb * ${C4}u + ${j}u, COUT4 - 1u);`);
    L.push(`  let cok${j} = cb * ${C4}u + ${j}u < COUT4;`);
  }
  for (let t = 0; t < K * K; t++) {
    for (let k = 0; k < CB; k++) {
      for (let j = 0; j < C4; j++) L.push(`  var a${t}_${k}_${j} = vec4f(0.0);`);
    }
  }
  L.push(`  {`);
  L.push(...channelFlags(n));
  const pixel: string[] = [];
  const d = (r: number, u: number, j: number) => `d${r}_${u}_${j}`;
  for (let r = 0; r < v.rowsPerStep; r++) {
    for (let u = 0; u < v.step; u++) {
      for (let j = 0; j < C4; j++) {
        const ok = `rowOk${r} && ox + ${u}u < OW && cok${j}`;
        const load = `dy[(orow${r} * OW + ox + ${u}u) * COUT4 + co${j}]`;
        pixel.push(`let ${d(r, u, j)} = select(vec4f(0.0), ${load}, ${ok});`);
      }
    }
  }
  // The products of the step's pixels are summed first: a variable carried across loop
  // iterations costs a masked write (load, blend, store) per assignment on lavapipe.
  for (let ky = 0; ky < K; ky++) {
    for (let kx = 0; kx < K; kx++) {
      for (let k = 0; k < CB; k++) {
        for (let j = 0; j < C4; j++) {
          let sum = "";
          for (let r = 0; r < v.rowsPerStep; r++) {
            for (let u = 0; u < v.step; u++) {
              const xb = `vec4f(${n.channel(u + kx, r + ky, k)})`;
              sum = sum === "" ? `${xb} * ${d(r, u, j)}` : `fma(${xb}, ${d(r, u, j)}, ${sum})`;
            }
          }
          pixel.push(`a${ky * K + kx}_${k}_${j} += ${sum};`);
        }
      }
    }
  }
  L.push(...rowWalk(n, pixel));
  L.push(`  }`);
  L.push(`  // part is [ranges, 3, 3, CIN, COUT]; write the sums of existing channels.`);
  L.push(`  let base = rr * 9u;`);
  for (let t = 0; t < K * K; t++) {
    for (let k = 0; k < CB; k++) {
      const cin = `ch * ${CB}u + ${k}u`;
      for (let j = 0; j < C4; j++) {
        L.push(
          `  if (live && ${cin} < CIN && cok${j}) { part[((base + ${t}u) * CIN + ${cin}) * COUT4 + co${j}] = a${t}_${k}_${j}; }`,
        );
      }
    }
  }
  L.push(`}`);
  return L.join("\n") + "\n";
}

/** Source of a variant's kernel file. */
export function kernelSource(v: ConvKernelVariant): string {
  return v.pass === "rows" ? rowsKernel(v) : wgradKernel(v);
}

if (import.meta.main) {
  for (const v of CONV_KERNEL_VARIANTS) {
    const url = new URL(`../../kernels/${v.file}`, import.meta.url);
    Deno.writeTextFileSync(url, kernelSource(v));
    console.log(`wrote kernels/${v.file}`);
  }
}
