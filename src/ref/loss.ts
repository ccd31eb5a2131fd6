/**
 * Float64 CPU reference of the losses (`kernels/loss_*.wgsl`).
 *
 * @module
 */

/** Which loss: the kernels' KIND 0, 1, 2. */
export type LossKind = "l1" | "mse" | "huber";

function elementLoss(kind: LossKind, d: number, delta: number): number {
  const a = Math.abs(d);
  if (kind === "l1") return a;
  if (kind === "mse") return d * d;
  return a <= delta ? 0.5 * d * d : delta * (a - 0.5 * delta);
}

function elementGrad(kind: LossKind, d: number, delta: number): number {
  if (kind === "l1") return Math.sign(d);
  if (kind === "mse") return 2 * d;
  return Math.min(delta, Math.max(-delta, d));
}

/** Mean over elements of the loss of `pred - target`. */
export function lossForward(
  kind: LossKind,
  pred: Float64Array,
  target: Float64Array,
  delta = 1,
): number {
  let sum = 0;
  for (let i = 0; i < pred.length; i++) sum += elementLoss(kind, pred[i] - target[i], delta);
  return sum / pred.length;
}

/** Gradient of the mean loss w.r.t. `pred`, times `dLoss` (negate it for `target`). */
export function lossBackward(
  kind: LossKind,
  pred: Float64Array,
  target: Float64Array,
  dLoss: number,
  delta = 1,
): Float64Array {
  const n = pred.length;
  return pred.map((p, i) => (dLoss * elementGrad(kind, p - target[i], delta)) / n);
}
