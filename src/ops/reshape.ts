/**
 * Reshape: the same elements under a new shape. Tensors own their buffers, so this copies
 * (`copy.wgsl`); it is used once per forward pass, to flatten the trunk's output.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import { type Shape, showShape, sizeOf, type Tensor } from "../engine/tensor.ts";

function copy(x: Tensor, shape: Shape): Tensor {
  const e = x.engine;
  const y = e.empty(shape);
  const n4 = Math.ceil(x.size / 4);
  e.run({ kernel: "copy.wgsl", constants: { N4: n4 }, dispatch: grid(n4) }, { x, y });
  return y;
}

/** `x` with shape `shape` (same number of elements). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  if (sizeOf(shape) !== x.size) {
    throw new Error(`reshape: cannot view ${showShape(x.shape)} as ${showShape(shape)}`);
  }
  const y = copy(x, shape);
  x.engine.tape.record("reshape", [x], y, (dy) => [copy(dy, x.shape)]);
  return y;
}
