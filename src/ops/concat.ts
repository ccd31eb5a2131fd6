/**
 * Feature concatenation `[N, A] ++ [N, B] -> [N, A + B]`, used to append the child's sex to
 * the image features. Kernels: `concat_forward.wgsl`, `concat_backward.wgsl`.
 * CPU twin: `src/ref/concat.ts`.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import { assertRank, showShape, type Tensor } from "../engine/tensor.ts";

/** Concatenates two rank-2 tensors along the feature (last) axis; backward splits `dy`. */
export function concatFeatures(a: Tensor, b: Tensor): Tensor {
  assertRank("concatFeatures", a, 2, "a");
  assertRank("concatFeatures", b, 2, "b");
  if (a.shape[0] !== b.shape[0]) {
    throw new Error(
      `concatFeatures: batch sizes differ, a ${showShape(a.shape)} vs b ${showShape(b.shape)}`,
    );
  }
  const e = a.engine;
  const [N, A] = a.shape;
  const B = b.shape[1];
  const T = A + B;
  const y = e.empty([N, T]);
  const n4 = Math.ceil((N * T) / 4);
  e.run(
    { kernel: "concat_forward.wgsl", constants: { N, A, B }, dispatch: grid(n4) },
    { a, b, y },
  );
  e.tape.record("concatFeatures", [a, b], y, (dy, needs) => {
    const slice = (OFF: number, W: number) => {
      const dx = e.empty([N, W]);
      const m4 = Math.ceil((N * W) / 4);
      e.run({
        kernel: "concat_backward.wgsl",
        constants: { N, T, OFF, W },
        dispatch: grid(m4),
      }, { dy, dx });
      return dx;
    };
    return [needs[0] ? slice(0, A) : null, needs[1] ? slice(A, B) : null];
  }, { N, A, B });
  return y;
}
