/**
 * ELU: `y = x` for `x > 0`, else `alpha * (exp(x) - 1)`.
 * Kernels: `elu_forward.wgsl`, `elu_backward.wgsl`. CPU twin: `src/ref/elu.ts`.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import type { Tensor } from "../engine/tensor.ts";

/**
 * Exponential linear unit, elementwise, any shape. `alpha` is compiled into the kernel
 * (one pipeline per distinct value), which suits a per-layer constant.
 */
export function elu(x: Tensor, alpha = 1): Tensor {
  if (!Number.isFinite(alpha)) throw new Error(`elu: alpha must be finite, got ${alpha}`);
  const e = x.engine;
  const n4 = Math.ceil(x.size / 4);
  const constants = { N4: n4, ALPHA: alpha };
  const y = e.empty(x.shape);
  e.run({ kernel: "elu_forward.wgsl", constants, dispatch: grid(n4) }, { x, y });
  e.tape.record("elu", [x], y, (dy) => {
    const dx = e.empty(x.shape);
    e.run({ kernel: "elu_backward.wgsl", constants, dispatch: grid(n4) }, { x, dy, dx });
    return [dx];
  });
  return y;
}
