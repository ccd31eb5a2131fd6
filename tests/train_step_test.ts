/**
 * A training step in steady state: no new GPU buffers, one queue submit, nothing left on
 * the tape, and the loss read back only when asked for.
 */
import assert from "node:assert/strict";
import { getConfig } from "../src/model/configs.ts";
import { BoneAgeNet } from "../src/model/network.ts";
import { l1Loss } from "../src/ops/loss.ts";
import { Adam } from "../src/model/optim.ts";
import { gpuTest, randomArray } from "./helpers.ts";

gpuTest("training steps reuse pooled buffers and submit once each", async (e) => {
  const config = getConfig("tiny");
  const S = config.inputHeight;
  const B = 4;
  const net = new BoneAgeNet(e, config, 1);
  const opt = new Adam(e, net.parameters(), { lr: 1e-3 });
  const images = e.keep(e.tensor(Float32Array.from(randomArray(B * S * S, 1)), [B, S, S, 1]));
  const male = e.keep(e.tensor([1, 0, 0, 1], [B, 1]));
  const target = e.keep(e.tensor([0.5, -0.2, 1.1, -1.4], [B, 1]));
  const allocations: number[] = [];
  const submits: number[] = [];
  let loss = null;
  for (let step = 0; step < 20; step++) {
    loss?.dispose();
    const before = e.stats.submits;
    loss = e.tidy(() => {
      const l = l1Loss(net.forward(images, male, true, step), target);
      opt.step(e.gradients(l, net.parameters()));
      return l;
    });
    e.flush();
    submits.push(e.stats.submits - before);
    allocations.push(e.pool.allocations);
    assert.equal(e.tape.entries.length, 0, "the tape is empty after backward");
  }
  // The first step may submit early when it creates persistent buffers (shape parameters).
  assert.deepEqual(submits.slice(1), Array(19).fill(1), "one submit per step in steady state");
  assert.equal(allocations[19], allocations[1], `pool allocations grew: ${allocations.join(",")}`);
  assert.ok(Number.isFinite(await loss!.item()));
});
