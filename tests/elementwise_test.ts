import { add, mul, scale } from "../src/ops/elementwise.ts";
import * as ref from "../src/ref/elementwise.ts";
import { assertClose, backwardOf, gpuTest, randomTensor, throwsWith } from "./helpers.ts";

for (const shape of [[1, 7, 13, 3], [3, 5, 17], [2, 1], [5]]) {
  gpuTest(
    `add/mul/scale forward and backward match the reference ${JSON.stringify(shape)}`,
    async (e) => {
      const a = randomTensor(e, shape, 21);
      const b = randomTensor(e, shape, 22);
      const dy = randomTensor(e, shape, 23);
      a.t.requiresGrad = true;
      b.t.requiresGrad = true;

      const sum = add(a.t, b.t);
      const [da0, db0] = backwardOf(e, sum, dy.t, [a.t, b.t]);
      const prod = mul(a.t, b.t);
      const [da1, db1] = backwardOf(e, prod, dy.t, [a.t, b.t]);
      const sc = scale(a.t, -1.25);
      const [da2] = backwardOf(e, sc, dy.t, [a.t]);

      assertClose(await sum.read(), ref.add(a.ref, b.ref), "add forward");
      assertClose(await da0!.read(), dy.ref, "add backward a");
      assertClose(await db0!.read(), dy.ref, "add backward b");
      assertClose(await prod.read(), ref.mul(a.ref, b.ref), "mul forward");
      assertClose(await da1!.read(), ref.mul(dy.ref, b.ref), "mul backward a");
      assertClose(await db1!.read(), ref.mul(dy.ref, a.ref), "mul backward b");
      assertClose(await sc.read(), ref.scale(a.ref, -1.25), "scale forward");
      assertClose(await da2!.read(), ref.scale(dy.ref, -1.25), "scale backward");
    },
  );
}

gpuTest("a tensor used twice gets both gradient contributions", async (e) => {
  const x = randomTensor(e, [3, 7], 31);
  const w = randomTensor(e, [3, 7], 32);
  x.t.requiresGrad = true;
  // y = x*x + 3x + w*x, so dy/dx = 2x + 3 + w (summed against a ones seed).
  const y = add(add(mul(x.t, x.t), scale(x.t, 3)), mul(w.t, x.t));
  const g = e.gradients(y, [x.t]).get(x.t)!;
  const want = x.ref.map((v, i) => 2 * v + 3 + w.ref[i]);
  assertClose(await g.read(), want, "d(x*x + 3x + w*x)/dx");
  const z = add(x.t, x.t);
  const gz = e.gradients(z, [x.t]).get(x.t)!;
  assertClose(await gz.read(), new Float64Array(21).fill(2), "d(x + x)/dx");
});

gpuTest("elementwise ops reject mismatched shapes, naming the op and both shapes", (e) => {
  const a = e.full([2, 3], 1);
  const b = e.full([3, 2], 1);
  throwsWith(() => add(a, b), "add", "[2, 3]", "[3, 2]");
  throwsWith(() => mul(a, b), "mul", "[2, 3]", "[3, 2]");
  throwsWith(() => scale(a, Infinity), "scale");
});
