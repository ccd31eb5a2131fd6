import { elu } from "../src/ops/elu.ts";
import { eluBackward, eluForward } from "../src/ref/elu.ts";
import { assertClose, backwardOf, gpuTest, randomTensor } from "./helpers.ts";

for (const [shape, alpha] of [[[1, 7, 13, 3], 1], [[3, 5, 5, 17], 0.5], [[2, 1], 1.7]] as const) {
  gpuTest(
    `elu forward/backward match the reference ${JSON.stringify(shape)} alpha ${alpha}`,
    async (e) => {
      const x = randomTensor(e, shape, 11, -3, 3);
      const dy = randomTensor(e, shape, 12);
      x.t.requiresGrad = true;
      const y = elu(x.t, alpha);
      const [dx] = backwardOf(e, y, dy.t, [x.t]);
      assertClose(await y.read(), eluForward(x.ref, alpha), "elu forward");
      assertClose(await dx!.read(), eluBackward(x.ref, dy.ref, alpha), "elu backward");
    },
  );
}

gpuTest("elu rejects a non-finite alpha", (e) => {
  const x = e.full([2], 1);
  let message = "";
  try {
    elu(x, NaN);
  } catch (err) {
    message = (err as Error).message;
  }
  if (!message.includes("elu: alpha")) throw new Error(`expected an elu error, got "${message}"`);
});
