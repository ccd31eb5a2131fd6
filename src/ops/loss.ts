/**
 * Regression losses, each the mean over all elements as a one-element tensor `[1]`:
 * `l1Loss` (MAE, the bone-age metric), `mseLoss`, `huberLoss`.
 * Kernels: `loss_forward.wgsl` (per-element loss, then the `sumMiddle` mean) and
 * `loss_backward.wgsl` (reads the incoming one-element gradient on the GPU).
 * CPU twin: `src/ref/loss.ts`.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import { assertSameShape, type Tensor } from "../engine/tensor.ts";
import { sumMiddle } from "./reduce.ts";

const KIND = { l1Loss: 0, mseLoss: 1, huberLoss: 2 } as const;

function meanLoss(op: keyof typeof KIND, pred: Tensor, target: Tensor, delta = 1): Tensor {
  assertSameShape(op, pred, target, ["pred", "target"]);
  const e = pred.engine;
  const n = pred.size;
  const n4 = Math.ceil(n / 4);
  const kind = KIND[op];
  const perElement = e.empty(pred.shape);
  e.run({
    kernel: "loss_forward.wgsl",
    constants: { N4: n4, KIND: kind, DELTA: delta },
    dispatch: grid(n4),
  }, { pred, tgt: target, y: perElement });
  const loss = sumMiddle(perElement, 1, n, 1, 1 / n, [1]);
  perElement.dispose();
  e.tape.record(op, [pred, target], loss, (dLoss, needs) =>
    [1, -1].map((sign, i) => {
      if (!needs[i]) return null;
      const g = e.empty(pred.shape);
      e.run({
        kernel: "loss_backward.wgsl",
        constants: { N4: n4, KIND: kind, DELTA: delta, INV_N: 1 / n, SIGN: sign },
        dispatch: grid(n4),
      }, { dloss: dLoss, pred, tgt: target, grad: g });
      return g;
    }), { delta });
  return loss;
}

/** Mean absolute error; gradient `sign(pred - target) / n` (0 where they are equal). */
export function l1Loss(pred: Tensor, target: Tensor): Tensor {
  return meanLoss("l1Loss", pred, target);
}

/** Mean squared error; gradient `2 (pred - target) / n`. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  return meanLoss("mseLoss", pred, target);
}

/**
 * Mean Huber loss: `0.5 d^2` for `|d| <= delta`, else `delta (|d| - 0.5 delta)`, with
 * `d = pred - target`; gradient `clamp(d, -delta, delta) / n`. `delta` is compiled into the
 * kernels.
 */
export function huberLoss(pred: Tensor, target: Tensor, delta = 1): Tensor {
  if (!(delta > 0 && Number.isFinite(delta))) {
    throw new Error(`huberLoss: delta must be a positive number, got ${delta}`);
  }
  return meanLoss("huberLoss", pred, target, delta);
}
