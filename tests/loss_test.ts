import { huberLoss, l1Loss, mseLoss } from "../src/ops/loss.ts";
import { lossBackward, lossForward, type LossKind } from "../src/ref/loss.ts";
import type { Tensor } from "../src/engine/tensor.ts";
import { assertClose, backwardOf, gpuTest, randomTensor } from "./helpers.ts";

const losses: [LossKind, (p: Tensor, t: Tensor) => Tensor, number][] = [
  ["l1", l1Loss, 1],
  ["mse", mseLoss, 1],
  ["huber", (p, t) => huberLoss(p, t, 0.7), 0.7],
  ["huber", (p, t) => huberLoss(p, t), 1],
];

for (const [kind, fn, delta] of losses) {
  for (const shape of [[7, 1], [3, 5, 9], [1], [1000, 1]]) {
    gpuTest(
      `${kind} loss (delta ${delta}) ${JSON.stringify(shape)} matches the reference`,
      async (e) => {
        const pred = randomTensor(e, shape, 1, -2, 2);
        const target = randomTensor(e, shape, 2, -2, 2);
        const dLoss = e.tensor([-1.5], [1]);
        pred.t.requiresGrad = true;
        target.t.requiresGrad = true;
        const loss = fn(pred.t, target.t);
        if (loss.shape.length !== 1 || loss.shape[0] !== 1) {
          throw new Error(`shape [${loss.shape}]`);
        }
        const [dp, dt] = backwardOf(e, loss, dLoss, [pred.t, target.t]);
        assertClose(await loss.read(), [lossForward(kind, pred.ref, target.ref, delta)], "loss");
        const want = lossBackward(kind, pred.ref, target.ref, -1.5, delta);
        assertClose(await dp!.read(), want, "d/dpred");
        assertClose(await dt!.read(), want.map((v) => -v), "d/dtarget");
      },
    );
  }
}

gpuTest("l1 gradient is 0 where pred equals target; losses flow through the tape", async (e) => {
  const pred = e.tensor([1, 2, 3, 4, 5], [5, 1]);
  const target = e.tensor([1, 0, 3, 9, 5], [5, 1]);
  pred.requiresGrad = true;
  const loss = l1Loss(pred, target);
  assertClose(await loss.read(), [(2 + 5) / 5], "l1");
  const g = e.gradients(loss, [pred]).get(pred)!;
  assertClose(await g.read(), [0, 0.2, 0, -0.2, 0], "l1 gradient");
});

gpuTest("losses reject mismatched shapes, naming both", (e) => {
  for (
    const [name, fn] of [["l1Loss", l1Loss], ["mseLoss", mseLoss], [
      "huberLoss",
      huberLoss,
    ]] as const
  ) {
    let message = "";
    try {
      fn(e.full([4, 1], 0), e.full([4], 0));
    } catch (err) {
      message = (err as Error).message;
    }
    if (![name, "pred [4, 1]", "target [4]"].every((p) => message.includes(p))) {
      throw new Error(`unexpected error "${message}"`);
    }
  }
});
