/**
 * The engine learns: a small CNN is trained to read the radius of a bright disc drawn at a
 * random place in a noisy image. The mean predictor's L1 loss on the standardized target is
 * about 0.87 (for a uniform target); an untrained or broken network cannot get near the bound.
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../src/model/configs.ts";
import { BoneAgeNet } from "../src/model/network.ts";
import { l1Loss } from "../src/ops/loss.ts";
import { Adam } from "../src/model/optim.ts";
import { gpuTest, rng } from "./helpers.ts";

const S = 16;
const CONFIG: ModelConfig = {
  name: "discs",
  inputHeight: S,
  inputWidth: S,
  trunk: [
    { type: "conv", kernel: 3, channels: 8, padding: 1 },
    { type: "bn" },
    { type: "relu" },
    { type: "maxpool", kernel: 2, stride: 2 },
    { type: "conv", kernel: 3, channels: 16, padding: 1 },
    { type: "bn" },
    { type: "relu" },
    { type: "maxpool", kernel: 2, stride: 2 },
  ],
  pool: "global-avg",
  dense: [16],
  activation: "relu",
  dropout: 0,
};

/** `n` images with one disc each; returns pixels and the standardized radius. */
function discs(n: number, seed: number) {
  const r = rng(seed);
  const images = new Float32Array(n * S * S);
  const radius = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const rad = 1.5 + 4.5 * r();
    const cx = rad + (S - 2 * rad) * r(), cy = rad + (S - 2 * rad) * r();
    radius[i] = (rad - 3.75) / 1.3; // uniform on [1.5, 6]: mean 3.75, SD 1.3
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const inside = (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= rad * rad;
        images[(i * S + y) * S + x] = (inside ? 1 : 0) + 0.2 * (r() - 0.5);
      }
    }
  }
  return { images, radius };
}

gpuTest("a small CNN learns to read a disc's radius", async (e) => {
  const net = new BoneAgeNet(e, CONFIG, 1);
  const opt = new Adam(e, net.parameters(), { lr: 3e-3 });
  const B = 32;
  const train = discs(512, 1);
  const test = discs(128, 2);
  const sex = e.keep(e.full([B, 1], 0));
  const evaluate = async () => {
    const x = e.tensor(test.images, [128, S, S, 1]);
    const y = e.tensor(test.radius, [128, 1]);
    const loss = e.noGrad(() =>
      e.tidy(() => l1Loss(net.forward(x, e.full([128, 1], 0), false), y))
    );
    const value = await loss.item();
    [x, y, loss].forEach((t) => t.dispose());
    return value;
  };
  const before = await evaluate();
  for (let step = 0; step < 240; step++) {
    const at = (step * B) % 512;
    e.tidy(() => {
      const x = e.tensor(train.images.subarray(at * S * S, (at + B) * S * S), [B, S, S, 1]);
      const y = e.tensor(train.radius.subarray(at, at + B), [B, 1]);
      const loss = l1Loss(net.forward(x, sex, true), y);
      opt.step(e.gradients(loss, net.parameters()));
    });
    e.flush();
  }
  const after = await evaluate();
  console.log(`disc radius L1: ${before.toFixed(3)} -> ${after.toFixed(3)}`);
  assert.ok(
    after < 0.3,
    `held-out L1 loss ${after.toFixed(3)} should fall below 0.3 (was ${before.toFixed(3)})`,
  );
  assert.ok(after < before / 2, `loss fell from ${before.toFixed(3)} to ${after.toFixed(3)}`);
});
