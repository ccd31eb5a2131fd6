/**
 * Elementwise arithmetic on same-shape tensors: `add`, `mul`, `scale`.
 * Kernels: `add.wgsl`, `mul.wgsl`, `scale.wgsl` (each also serves its op's backward).
 * CPU twin: `src/ref/elementwise.ts`.
 *
 * Gradients are not copied: `add` hands `dy` itself to both inputs. A tensor used twice
 * (`add(x, x)`, `mul(x, x)`) gets both contributions summed by the tape.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import { assertSameShape, type Tensor } from "../engine/tensor.ts";

function binary(kernel: string, a: Tensor, b: Tensor): Tensor {
  const e = a.engine;
  const n4 = Math.ceil(a.size / 4);
  const y = e.empty(a.shape);
  e.run({ kernel, constants: { N4: n4 }, dispatch: grid(n4) }, { a, b, y });
  return y;
}

function scaled(x: Tensor, s: number): Tensor {
  const e = x.engine;
  const n4 = Math.ceil(x.size / 4);
  const y = e.empty(x.shape);
  e.run({ kernel: "scale.wgsl", constants: { N4: n4, S: s }, dispatch: grid(n4) }, { x, y });
  return y;
}

/** `a + b`, elementwise; shapes must be equal. */
export function add(a: Tensor, b: Tensor): Tensor {
  assertSameShape("add", a, b);
  const y = binary("add.wgsl", a, b);
  a.engine.tape.record("add", [a, b], y, (dy) => [dy, dy]);
  return y;
}

/** `a * b`, elementwise; shapes must be equal. */
export function mul(a: Tensor, b: Tensor): Tensor {
  assertSameShape("mul", a, b);
  const y = binary("mul.wgsl", a, b);
  a.engine.tape.record("mul", [a, b], y, (dy, needs) => [
    needs[0] ? binary("mul.wgsl", dy, b) : null,
    needs[1] ? binary("mul.wgsl", dy, a) : null,
  ]);
  return y;
}

/**
 * `s * x`, elementwise. `s` is compiled into the kernel (one pipeline per distinct value),
 * so use it for fixed constants, not for values that change every step.
 */
export function scale(x: Tensor, s: number): Tensor {
  if (!Number.isFinite(s)) throw new Error(`scale: factor must be finite, got ${s}`);
  const y = scaled(x, s);
  x.engine.tape.record("scale", [x], y, (dy) => [scaled(dy, s)]);
  return y;
}
