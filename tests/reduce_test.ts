import { sumMiddle } from "../src/ops/reduce.ts";
import * as ref from "../src/ref/reduce.ts";
import { assertClose, gpuTest, randomTensor } from "./helpers.ts";

for (
  const [B, R, C] of [[1, 1, 1], [3, 7, 5], [1, 1000, 3], [2, 20000, 4], [1, 5, 130], [3, 300, 8], [
    1,
    70000,
    16,
  ]]
) {
  gpuTest(`sumMiddle [${B}, ${R}, ${C}] matches the reference`, async (e) => {
    const x = randomTensor(e, [B, R, C], B * 31 + R + C);
    const y = sumMiddle(x.t, B, R, C, 0.5);
    assertClose(await y.read(), ref.sumMiddle(x.ref, B, R, C, 0.5), "sumMiddle");
  });
}
