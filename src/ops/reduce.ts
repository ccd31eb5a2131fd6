/**
 * Sums over the middle axis of a `[B, R, C]` view, on the GPU: bias gradients, batch-norm
 * statistics, global average pooling and loss means all reduce this way.
 * Kernel: `reduce_sum.wgsl`. CPU twin: `src/ref/reduce.ts`.
 *
 * @module
 */
import { grid, type Program } from "../engine/engine.ts";
import { showShape, Tensor } from "../engine/tensor.ts";

/** Rows summed by one invocation per pass. */
const CHUNK = 128;

/**
 * `y[b, c] = scale * sum_r x[b, r, c]` for `x` viewed as `[B, R, C]` (x.size must be B*R*C).
 * Returns a tensor of shape `outShape` (default `[B, C]`). Not recorded on the tape: ops that
 * use it record their own backward.
 */
export function sumMiddle(
  x: Tensor,
  B: number,
  R: number,
  C: number,
  scale = 1,
  outShape: readonly number[] = [B, C],
): Tensor {
  if (x.size !== B * R * C) {
    throw new Error(`sumMiddle: ${showShape(x.shape)} cannot be viewed as [${B}, ${R}, ${C}]`);
  }
  const e = x.engine;
  let current = x;
  let rows = R;
  do {
    const S = Math.ceil(rows / CHUNK);
    const last = S === 1;
    const out = last ? e.empty(outShape) : e.empty([B, S, C]);
    const SCALE = last ? scale : 1;
    // Four channels per invocation when they fit: a quarter of the invocations and loads.
    const program: Program = C % 4 === 0
      ? {
        kernel: "reduce_sum_vec4.wgsl",
        constants: { B, R: rows, C4: C / 4, CHUNK, SCALE },
        dispatch: grid(B * S * C / 4),
      }
      : {
        kernel: "reduce_sum.wgsl",
        constants: { B, R: rows, C, CHUNK, SCALE },
        dispatch: grid(B * S * C),
      };
    e.run(program, { x: current, y: out });
    if (current !== x) current.dispose();
    current = out;
    rows = S;
  } while (rows > 1);
  return current;
}
