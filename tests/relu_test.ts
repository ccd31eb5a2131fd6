import { relu } from "../src/ops/relu.ts";
import { reluBackward, reluForward } from "../src/ref/relu.ts";
import { assertClose, backwardOf, gpuTest, randomTensor } from "./helpers.ts";

for (const shape of [[1, 7, 13, 3], [3, 5, 5, 17], [2, 1]]) {
  gpuTest(`relu forward/backward match the reference ${JSON.stringify(shape)}`, async (e) => {
    const x = randomTensor(e, shape, 1);
    const dy = randomTensor(e, shape, 2);
    x.t.requiresGrad = true;
    const y = relu(x.t);
    const [dx] = backwardOf(e, y, dy.t, [x.t]);
    assertClose(await y.read(), reluForward(x.ref), "relu forward");
    assertClose(await dx!.read(), reluBackward(x.ref, dy.ref), "relu backward");
  });
}
