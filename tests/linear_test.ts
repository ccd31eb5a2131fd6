import { add } from "../src/ops/elementwise.ts";
import { linear, matmul } from "../src/ops/linear.ts";
import * as ref from "../src/ref/linear.ts";
import { assertClose, backwardOf, gpuTest, randomTensor, throwsWith } from "./helpers.ts";

// [N, In, Out]: odd edges, a single output, and multiples of 4 (the vec4 load paths).
const cases = [[3, 129, 1], [7, 17, 5], [8, 16, 12], [1, 1, 1], [6, 33, 8], [32, 257, 20]];
for (const [N, In, Out] of cases) {
  for (const withBias of [true, false]) {
    gpuTest(
      `linear [${N}, ${In}] @ [${In}, ${Out}]${
        withBias ? " + b" : ""
      } forward/backward match the reference`,
      async (e) => {
        const x = randomTensor(e, [N, In], N * 7 + In);
        const w = randomTensor(e, [In, Out], In * 5 + Out);
        const b = randomTensor(e, [Out], Out + 3);
        const dy = randomTensor(e, [N, Out], 99);
        for (const t of [x.t, w.t, b.t]) t.requiresGrad = true;
        const y = linear(x.t, w.t, withBias ? b.t : null);
        const grads = backwardOf(e, y, dy.t, withBias ? [x.t, w.t, b.t] : [x.t, w.t]);
        const want = ref.linearBackward(x.ref, w.ref, dy.ref, N, In, Out);
        assertClose(
          await y.read(),
          ref.linearForward(x.ref, w.ref, withBias ? b.ref : null, N, In, Out),
          "linear forward",
        );
        assertClose(await grads[0]!.read(), want.dx, "linear dx");
        assertClose(await grads[1]!.read(), want.dw, "linear dw");
        if (withBias) assertClose(await grads[2]!.read(), want.db, "linear db");
        else if (grads.length !== 2) throw new Error("no bias gradient expected");
      },
    );
  }
}

gpuTest("matmul with both operands transposed matches the reference", async (e) => {
  const [M, K, N] = [5, 9, 6];
  const a = randomTensor(e, [K, M], 1);
  const b = randomTensor(e, [N, K], 2);
  const c = matmul(a.t, b.t, { transposeA: true, transposeB: true });
  const want = ref.matmul(ref.transpose(a.ref, K, M), ref.transpose(b.ref, N, K), M, K, N);
  assertClose(await c.read(), want, "a^T @ b^T");
});

gpuTest("linear gradients flow through the tape (w and b used twice)", async (e) => {
  const [N, In, Out] = [4, 6, 3];
  const x = randomTensor(e, [N, In], 5);
  const w = randomTensor(e, [In, Out], 6);
  const b = randomTensor(e, [Out], 7);
  w.t.requiresGrad = true;
  b.t.requiresGrad = true;
  // Two layers sharing w and b; the loss is the sum of both outputs.
  const y = add(linear(x.t, w.t, b.t), linear(x.t, w.t, b.t));
  const g = e.gradients(y, [w.t, b.t]);
  const twos = new Float64Array(N * Out).fill(2);
  const want = ref.linearBackward(x.ref, w.ref, twos, N, In, Out);
  assertClose(await g.get(w.t)!.read(), want.dw, "dw");
  assertClose(await g.get(b.t)!.read(), want.db, "db");
});

gpuTest("linear and matmul reject mismatched shapes, naming both", (e) => {
  const x = e.full([3, 4], 1);
  const w = e.full([5, 2], 1);
  throwsWith(() => linear(x, w), "linear", "[3, 4]", "[5, 2]");
  throwsWith(() => linear(x, e.full([4, 2], 1), e.full([3], 1)), "linear", "[3]", "[4, 2]");
  throwsWith(() => linear(e.full([12], 1), w), "linear", "[12]");
  throwsWith(() => matmul(x, w), "matmul", "[3, 4]", "[5, 2]");
});
