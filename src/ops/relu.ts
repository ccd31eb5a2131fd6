/**
 * ReLU: `y = max(x, 0)`. Kernels: `relu_forward.wgsl`, `relu_backward.wgsl`.
 * CPU twin: `src/ref/relu.ts`.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import type { Tensor } from "../engine/tensor.ts";

/** Rectified linear unit, elementwise, any shape. */
export function relu(x: Tensor): Tensor {
  const e = x.engine;
  const n4 = Math.ceil(x.size / 4);
  const y = e.empty(x.shape);
  e.run({ kernel: "relu_forward.wgsl", constants: { N4: n4 }, dispatch: grid(n4) }, { x, y });
  e.tape.record("relu", [x], y, (dy) => {
    const dx = e.empty(x.shape);
    e.run({ kernel: "relu_backward.wgsl", constants: { N4: n4 }, dispatch: grid(n4) }, {
      x,
      dy,
      dx,
    });
    return [dx];
  });
  return y;
}
