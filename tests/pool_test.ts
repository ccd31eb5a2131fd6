import { avgPool2d, globalAvgPool, maxPool2d } from "../src/ops/pool.ts";
import { windowOutputSide } from "../src/ops/geometry.ts";
import {
  avgPool2dBackward,
  avgPool2dForward,
  globalAvgPoolBackward,
  globalAvgPoolForward,
  maxPool2dBackward,
  maxPool2dForward,
} from "../src/ref/pool.ts";
import { assertClose, backwardOf, gpuTest, randomTensor, throwsWith } from "./helpers.ts";

/** [N, H, W, C, K, S]: odd spatial sizes, channels on and off the vec4 path, overlap. */
const CASES = [
  [1, 7, 13, 3, 2, 2],
  [3, 7, 13, 5, 3, 2],
  [3, 7, 13, 17, 3, 2],
  [1, 7, 13, 8, 3, 2],
  [3, 9, 10, 4, 2, 2],
  [2, 8, 8, 16, 3, 1],
  [1, 5, 6, 1, 3, 3],
];

for (const [N, H, W, C, K, S] of CASES) {
  const tag = `[${N}, ${H}, ${W}, ${C}] k${K} s${S}`;
  const OH = windowOutputSide(H, K, S);
  const OW = windowOutputSide(W, K, S);

  gpuTest(`maxPool2d forward/backward match the reference ${tag}`, async (e) => {
    const x = randomTensor(e, [N, H, W, C], 1);
    const dy = randomTensor(e, [N, OH, OW, C], 2);
    x.t.requiresGrad = true;
    const y = maxPool2d(x.t, { kernel: K, stride: S });
    const [dx] = backwardOf(e, y, dy.t, [x.t]);
    const want = maxPool2dForward(x.ref, N, H, W, C, K, S);
    assertClose(await y.read(), want.y, "maxPool2d forward");
    assertClose(await dx!.read(), maxPool2dBackward(dy.ref, want.argmax, N, H, W, C, K, S), "dx");
  });

  gpuTest(`avgPool2d forward/backward match the reference ${tag}`, async (e) => {
    const x = randomTensor(e, [N, H, W, C], 3);
    const dy = randomTensor(e, [N, OH, OW, C], 4);
    x.t.requiresGrad = true;
    const y = avgPool2d(x.t, { kernel: K, stride: S });
    const [dx] = backwardOf(e, y, dy.t, [x.t]);
    assertClose(await y.read(), avgPool2dForward(x.ref, N, H, W, C, K, S), "avgPool2d forward");
    assertClose(await dx!.read(), avgPool2dBackward(dy.ref, N, H, W, C, K, S), "dx");
  });
}

for (const [N, H, W, C] of [[1, 7, 13, 3], [3, 7, 13, 17], [3, 5, 6, 8], [2, 1, 1, 5]]) {
  gpuTest(
    `globalAvgPool forward/backward match the reference [${N}, ${H}, ${W}, ${C}]`,
    async (e) => {
      const x = randomTensor(e, [N, H, W, C], 5);
      const dy = randomTensor(e, [N, C], 6);
      x.t.requiresGrad = true;
      const y = globalAvgPool(x.t);
      const [dx] = backwardOf(e, y, dy.t, [x.t]);
      assertClose(await y.read(), globalAvgPoolForward(x.ref, N, H, W, C), "globalAvgPool forward");
      assertClose(await dx!.read(), globalAvgPoolBackward(dy.ref, N, H, W, C), "dx");
    },
  );
}

for (const C of [1, 4]) {
  gpuTest(
    `maxPool2d: ties go to the first maximum, overlapping windows add up (C=${C})`,
    async (e) => {
      // Channel c of every pixel holds the same value, so each plane behaves like C = 1.
      const plane = (values: number[]) => values.flatMap((v) => Array(C).fill(v));
      // A 5x5 plane of ones pooled 3/2: every window ties and picks its top-left corner, so
      // the gradient of window (oh, ow) lands on input (2*oh, 2*ow).
      const x = e.full([1, 5, 5, C], 1);
      x.requiresGrad = true;
      const y = maxPool2d(x, { kernel: 3, stride: 2 });
      const dy = e.tensor(plane([1, 2, 3, 4]), [1, 2, 2, C]);
      const [dx] = backwardOf(e, y, dy, [x]);
      assertClose(await y.read(), plane([1, 1, 1, 1]), "forward");
      const want = new Array(25).fill(0);
      [want[0], want[2], want[10], want[12]] = [1, 2, 3, 4];
      assertClose(await dx!.read(), plane(want), "dx");

      // The centre pixel, the maximum of all four overlapping windows, receives all four.
      const peak = new Array(25).fill(-1);
      peak[12] = 5;
      const x2 = e.tensor(plane(peak), [1, 5, 5, C]);
      x2.requiresGrad = true;
      const y2 = maxPool2d(x2, { kernel: 3, stride: 2 });
      const [dx2] = backwardOf(e, y2, dy, [x2]);
      const want2 = new Array(25).fill(0);
      want2[12] = 10;
      assertClose(await dx2!.read(), plane(want2), "dx shared by overlapping windows");
    },
  );
}

gpuTest("pooling ops reject bad shapes and options with clear errors", (e) => {
  const x = e.full([1, 4, 4, 3], 1);
  throwsWith(() => maxPool2d(x, { kernel: 5, stride: 1 }), "maxPool2d: kernel 5");
  throwsWith(() => avgPool2d(x, { kernel: 2, stride: 0 }), "avgPool2d: stride");
  throwsWith(() => maxPool2d(e.full([4, 4], 1), { kernel: 2, stride: 2 }), "[4, 4]");
  throwsWith(() => globalAvgPool(e.full([2, 3], 1)), "globalAvgPool");
});
