/**
 * The whole network, end to end: the float64 reference's gradients agree with finite
 * differences, and the GPU's gradients of the same network agree with the reference.
 * Network: [conv3x3 -> BN -> ReLU -> max-pool 2] -> [conv3x3 (no padding) -> BN -> ReLU ->
 * max-pool 2] -> global average pool -> concat sex -> linear -> L1 loss.
 */
import assert from "node:assert/strict";
import { loadModelWeights, modelToSafetensors } from "../src/app/checkpoint.ts";
import { CONFIGS, type ModelConfig, planLayers } from "../src/model/configs.ts";
import { BoneAgeNet } from "../src/model/network.ts";
import { l1Loss } from "../src/ops/loss.ts";
import { refNetwork } from "../src/model/network_ref.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/app/safetensors.ts";
import { assertClose, gpuTest, randomArray } from "./helpers.ts";

const CONFIG: ModelConfig = {
  name: "gradcheck",
  inputHeight: 13,
  inputWidth: 11,
  trunk: [
    { type: "conv", kernel: 3, channels: 5, padding: 1 },
    { type: "bn" },
    { type: "relu" },
    { type: "maxpool", kernel: 2, stride: 2 },
    { type: "conv", kernel: 3, channels: 6, padding: 0 },
    { type: "bn" },
    { type: "relu" },
    { type: "maxpool", kernel: 2, stride: 2 },
  ],
  pool: "global-avg",
  dense: [],
  activation: "relu",
  dropout: 0,
};
const N = 3;

function inputs() {
  const images = Float64Array.from(Float32Array.from(randomArray(N * 13 * 11, 7)));
  const male = Float64Array.from([1, 0, 1]);
  const target = Float64Array.from([0.7, -1.3, 2.1]);
  return { images, male, target };
}

/** Random (not freshly initialized) parameters so BN's gamma/beta are not trivial. */
function randomParams(names: { name: string; size: number }[]): Map<string, Float64Array> {
  const params = new Map<string, Float64Array>();
  names.forEach(({ name, size }, i) => {
    const lo = name.endsWith("running_var") ? 0.5 : -1;
    params.set(name, Float64Array.from(Float32Array.from(randomArray(size, 100 + i, lo, 1))));
  });
  return params;
}

const NAMES = [
  { name: "trunk.0.weight", size: 3 * 3 * 1 * 5 },
  { name: "trunk.1.weight", size: 5 },
  { name: "trunk.1.bias", size: 5 },
  { name: "trunk.4.weight", size: 3 * 3 * 5 * 6 },
  { name: "trunk.5.weight", size: 6 },
  { name: "trunk.5.bias", size: 6 },
  { name: "head.0.weight", size: 7 },
  { name: "head.0.bias", size: 1 },
];

Deno.test("reference network gradients match central finite differences", () => {
  const { images, male, target } = inputs();
  const params = randomParams(NAMES);
  const { grads } = refNetwork(CONFIG, params, images, N, male, target);
  const h = 1e-6;
  let checked = 0;
  for (const { name, size } of NAMES) {
    const value = params.get(name)!;
    for (const i of [0, Math.floor(size / 2), size - 1]) {
      const saved = value[i];
      value[i] = saved + h;
      const up = refNetwork(CONFIG, params, images, N, male, target).loss;
      value[i] = saved - h;
      const down = refNetwork(CONFIG, params, images, N, male, target).loss;
      value[i] = saved;
      const numeric = (up - down) / (2 * h);
      const analytic = grads.get(name)![i];
      const scale = Math.max(1e-3, Math.abs(numeric), Math.abs(analytic));
      assert.ok(
        Math.abs(numeric - analytic) / scale < 1e-5,
        `${name}[${i}]: finite difference ${numeric} vs backprop ${analytic}`,
      );
      checked++;
    }
  }
  assert.equal(checked, NAMES.length * 3);
});

gpuTest("GPU gradients of the whole network match the float64 reference", async (e) => {
  const net = new BoneAgeNet(e, CONFIG, 3);
  const params = new Map<string, Float64Array>();
  let seed = 50;
  for (const { name, tensor } of net.namedTensors()) {
    // Keep the He-initialized weights; give gamma and the biases non-trivial values.
    let values: Float32Array;
    if (tensor.shape.length > 1) values = await tensor.read();
    else if (name.endsWith(".bias")) {
      values = Float32Array.from(randomArray(tensor.size, seed++, -0.5, 0.5));
    } else values = Float32Array.from(randomArray(tensor.size, seed++, 0.5, 1.5));
    e.write(tensor, values);
    params.set(name, Float64Array.from(values));
  }
  assert.deepEqual(
    net.parameters().map((t) => t.name).sort(),
    NAMES.map((n) => n.name).sort(),
    "the GPU model has exactly the parameters of the reference network",
  );
  const { images, male, target } = inputs();
  const ref = refNetwork(CONFIG, params, images, N, male, target);
  const { loss, grads } = e.tidy(() => {
    const x = e.tensor(Float32Array.from(images), [N, 13, 11, 1]);
    const pred = net.forward(x, e.tensor(Float32Array.from(male), [N, 1]), true);
    const loss = l1Loss(pred, e.tensor(Float32Array.from(target), [N, 1]));
    return { loss, grads: e.gradients(loss, net.parameters()) };
  });
  assertClose(await loss.read(), [ref.loss], "loss");
  for (const p of net.parameters()) {
    assertClose(await grads.get(p)!.read(), ref.grads.get(p.name!)!, `gradient of ${p.name}`);
  }
});

gpuTest(
  "head layers are named by their nn.Sequential index; old checkpoints still load",
  async (e) => {
    for (
      const [dropout, names] of [[0, ["head.0", "head.2", "head.4"]], [0.3, [
        "head.0",
        "head.3",
        "head.6",
      ]]] as const
    ) {
      const config: ModelConfig = { ...CONFIG, dense: [7, 5], dropout };
      const model = new BoneAgeNet(e, config, 3);
      const head = model.namedTensors().map((n) => n.name).filter((n) => n.startsWith("head."));
      assert.deepEqual(head, names.flatMap((n) => [`${n}.weight`, `${n}.bias`]));
      // The same weights under the names of before (head.0, head.1, head.2) load unchanged.
      const saved = decodeSafetensors(await modelToSafetensors(model, { step: "0" }));
      const legacy = new Map(
        [...saved.tensors].map(([name, t]) => {
          const k = names.findIndex((n) => name.startsWith(`${n}.`));
          return [k < 0 ? name : name.replace(names[k], `head.${k}`), t];
        }),
      );
      const copy = new BoneAgeNet(e, config, 4);
      loadModelWeights(copy, encodeSafetensors(legacy, saved.metadata), "legacy.safetensors");
      for (const [i, { tensor }] of copy.namedTensors().entries()) {
        assert.deepEqual(await tensor.read(), await model.namedTensors()[i].tensor.read());
      }
    }
  },
);

gpuTest("planLayers: the model's parameters and its trunk output follow the plan", (e) => {
  for (const config of Object.values(CONFIGS)) {
    const model = new BoneAgeNet(e, config, 3);
    const shapes = new Map(model.namedTensors().map((n) => [n.name, n.tensor.shape]));
    const plan = planLayers(config, 2);
    plan.forEach((layer, i) => {
      if (i > 0) assert.deepEqual(layer.input, plan[i - 1].output, `${layer.name} input`);
      if (layer.spec.type !== "conv") return;
      const g = layer.window!;
      assert.deepEqual(shapes.get(`${layer.name}.weight`), [g.KH, g.KW, g.Cin, g.Cout]);
      assert.equal(shapes.has(`${layer.name}.bias`), layer.bias, `${layer.name}.bias`);
      assert.equal(layer.bias, config.trunk[i + 1]?.type !== "bn");
    });
    // The first head layer reads exactly the features the planned trunk produces.
    const [, H, W, C] = plan.at(-1)!.output;
    const features = (config.pool === "global-avg" ? C : H * W * C) +
      ((config.sex ?? true) ? 1 : 0);
    const head = model.namedTensors().find((n) => n.name.startsWith("head."))!;
    assert.equal(head.tensor.shape[0], features, `${config.name}: ${head.name}`);
    model.namedTensors().forEach((n) => n.tensor.dispose());
  }
  // A smaller input (the low-resolution phase) halves at each pool like the full one.
  const small = CONFIGS.small;
  const pools = small.trunk.filter((s) => s.type === "maxpool").length;
  assert.deepEqual(planLayers(small, 1, [64, 64]).at(-1)!.output.slice(1, 3), [
    64 / 2 ** pools,
    64 / 2 ** pools,
  ]);
});
