import { concatFeatures } from "../src/ops/concat.ts";
import { concatBackward, concatForward } from "../src/ref/concat.ts";
import { assertClose, backwardOf, gpuTest, randomTensor } from "./helpers.ts";

for (const [N, A, B] of [[3, 256, 1], [5, 7, 3], [1, 1, 1], [4, 8, 4], [7, 13, 6]]) {
  gpuTest(`concatFeatures [${N}, ${A}] ++ [${N}, ${B}] matches the reference`, async (e) => {
    const a = randomTensor(e, [N, A], A + 1);
    const b = randomTensor(e, [N, B], B + 2);
    const dy = randomTensor(e, [N, A + B], 3);
    a.t.requiresGrad = true;
    b.t.requiresGrad = true;
    const y = concatFeatures(a.t, b.t);
    const [da, db] = backwardOf(e, y, dy.t, [a.t, b.t]);
    const want = concatBackward(dy.ref, N, A, B);
    assertClose(await y.read(), concatForward(a.ref, b.ref, N, A, B), "concat forward");
    assertClose(await da!.read(), want.da, "concat da");
    assertClose(await db!.read(), want.db, "concat db");
  });
}

gpuTest("concatFeatures rejects different batch sizes, naming both shapes", (e) => {
  let message = "";
  try {
    concatFeatures(e.full([3, 4], 1), e.full([2, 1], 1));
  } catch (err) {
    message = (err as Error).message;
  }
  if (!["concatFeatures", "[3, 4]", "[2, 1]"].every((p) => message.includes(p))) {
    throw new Error(`unexpected error "${message}"`);
  }
});
