/**
 * Fully connected layer `y = x @ w + b` and the matrix product behind it.
 * Kernel: `matmul.wgsl` (register-tiled, 4x4 outputs per invocation, transpose variants).
 * CPU twin: `src/ref/linear.ts`.
 *
 * @module
 */
import { type Bindings, grid, type Program } from "../engine/engine.ts";
import { assertRank, showShape, type Tensor } from "../engine/tensor.ts";
import { sumMiddle } from "./reduce.ts";

/** Options of {@link matmul}. */
export interface MatmulOptions {
  /** `a` is stored `[K, M]` and used transposed. */
  transposeA?: boolean;
  /** `b` is stored `[N, K]` and used transposed. */
  transposeB?: boolean;
  /** Added to every row of the result; shape `[N]`. */
  bias?: Tensor | null;
}

/**
 * The `matmul.wgsl` launch computing `C [M, N] = op(A) @ op(B) (+ bias)` with inner size `K`.
 * Bound by {@link matmulBindings}.
 */
export function matmulProgram(
  M: number,
  N: number,
  K: number,
  transposeA: boolean,
  transposeB: boolean,
  hasBias: boolean,
): Program {
  return {
    kernel: "matmul.wgsl",
    constants: {
      M,
      N,
      K,
      TRANS_A: transposeA ? 1 : 0,
      TRANS_B: transposeB ? 1 : 0,
      // The kernel reads A(m0..m0+3, k) and B(k, n0..n0+3) as one vec4 only where those
      // four values are contiguous and 16-byte aligned.
      VEC_A: transposeA && M % 4 === 0 ? 1 : 0,
      VEC_B: !transposeB && N % 4 === 0 ? 1 : 0,
      HAS_BIAS: hasBias ? 1 : 0,
    },
    dispatch: grid(Math.ceil(M / 4) * Math.ceil(N / 4)),
  };
}

/**
 * The bindings of `matmul.wgsl` for `a @ b (+ bias) -> c`: `a4`/`a1` and `b4`/`b1` are vec4
 * and scalar views of one buffer each. Without a bias (`HAS_BIAS` 0) the kernel never reads
 * that binding, but it must hold a buffer: a's.
 */
export function matmulBindings(
  a: Bindings[string],
  b: Bindings[string],
  bias: Bindings[string] | null,
  c: Bindings[string],
): Bindings {
  return { a4: a, a1: a, b4: b, b1: b, bias: bias ?? a, c };
}

/**
 * `op(a) @ op(b) (+ bias)` for rank-2 tensors, where `op` transposes when asked. Returns
 * `[M, N]`. Not recorded on the tape (see {@link linear}).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const { transposeA = false, transposeB = false, bias = null } = options;
  assertRank("matmul", a, 2, "a");
  assertRank("matmul", b, 2, "b");
  const [M, Ka] = transposeA ? [a.shape[1], a.shape[0]] : [a.shape[0], a.shape[1]];
  const [Kb, N] = transposeB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (Ka !== Kb) {
    throw new Error(
      `matmul: inner dimensions differ, a ${showShape(a.shape)}${transposeA ? "^T" : ""} vs b ${
        showShape(b.shape)
      }${transposeB ? "^T" : ""}`,
    );
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== N)) {
    throw new Error(`matmul: bias ${showShape(bias.shape)} does not match ${N} output columns`);
  }
  const e = a.engine;
  const c = e.empty([M, N]);
  e.run(
    matmulProgram(M, N, Ka, transposeA, transposeB, bias !== null),
    matmulBindings(a, b, bias, c),
  );
  return c;
}

/**
 * Fully connected layer: `x [N, In] @ w [In, Out] + b [Out]` (no bias when `b` is null).
 * Backward: `dx = dy @ w^T`, `dw = x^T @ dy`, `db = sum over rows of dy`.
 */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  assertRank("linear", x, 2, "x");
  assertRank("linear", w, 2, "w");
  if (x.shape[1] !== w.shape[0]) {
    throw new Error(
      `linear: x ${showShape(x.shape)} has ${x.shape[1]} features but w ${
        showShape(w.shape)
      } expects ${w.shape[0]}`,
    );
  }
  const [n, out] = [x.shape[0], w.shape[1]];
  if (b && (b.shape.length !== 1 || b.shape[0] !== out)) {
    throw new Error(
      `linear: bias b ${showShape(b.shape)} does not match w ${
        showShape(w.shape)
      } (expected [${out}])`,
    );
  }
  const y = matmul(x, w, { bias: b });
  const inputs = b ? [x, w, b] : [x, w];
  x.engine.tape.record("linear", inputs, y, (dy, needs) => [
    needs[0] ? matmul(dy, w, { transposeB: true }) : null,
    needs[1] ? matmul(x, dy, { transposeA: true }) : null,
    ...(b ? [needs[2] ? sumMiddle(dy, 1, n, out, 1, [out]) : null] : []),
  ], { N: n, In: w.shape[0], Out: out, hasBias: b !== null });
  return y;
}
