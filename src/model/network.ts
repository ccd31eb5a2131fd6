/**
 * {@link BoneAgeNet}: the parameters of a {@link ModelConfig} and its forward pass, written
 * as a plain sequence of engine ops so a reader can follow each layer to its kernel.
 *
 * Names follow PyTorch's `nn.Sequential` convention (`trunk.0.weight`, `head.2.bias`) so
 * checkpoints map one-to-one onto a PyTorch model of the same configuration.
 *
 * @module
 */
import { mulberry32 } from "../util.ts";
import type { Engine } from "../engine/engine.ts";
import type { LayerSpec, ModelConfig } from "./configs.ts";
import { headLayer, outputCount, planLayers, trunkOutputShape, usesSex } from "./configs.ts";
import { batchNorm2d } from "../ops/batchnorm.ts";
import { concatFeatures } from "../ops/concat.ts";
import { conv2d } from "../ops/conv2d.ts";
import { Dropout } from "../ops/dropout.ts";
import { elu } from "../ops/elu.ts";
import { linear } from "../ops/linear.ts";
import { globalAvgPool, maxPool2d } from "../ops/pool.ts";
import { relu } from "../ops/relu.ts";
import { reshape } from "../ops/reshape.ts";
import type { Tensor } from "../engine/tensor.ts";

/** Deterministic normal samples (mulberry32 + Box-Muller) for weight initialization. */
export function normalSampler(seed: number): () => number {
  const next = mulberry32(seed);
  // Half a step off zero, so the logarithm below is always finite.
  const uniform = () => next() + 0.5 / 4294967296;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** A trainable parameter or a running statistic, with its checkpoint name. */
interface Named {
  name: string;
  tensor: Tensor;
}

type TrunkLayer =
  & { name: string }
  & (
    | { spec: LayerSpec & { type: "conv" }; weight: Tensor; bias: Tensor | null }
    | {
      spec: LayerSpec & { type: "bn" };
      gamma: Tensor;
      beta: Tensor;
      mean: Tensor;
      variance: Tensor;
    }
    | { spec: LayerSpec & { type: "relu" | "elu" | "maxpool" } }
  );

interface DenseLayer {
  weight: Tensor;
  bias: Tensor;
}

/** The regression network of one configuration (the bone-age models and the keypoint model). */
export class BoneAgeNet {
  /** The configuration this network was built from. */
  readonly config: ModelConfig;
  /** The engine its tensors live on. */
  readonly engine: Engine;
  readonly #trunk: TrunkLayer[] = [];
  readonly #dense: DenseLayer[] = [];
  readonly #dropouts: Dropout[] = [];
  readonly #named: Named[] = [];

  /** Builds the network with He-normal weights drawn from `seed`. */
  constructor(engine: Engine, config: ModelConfig, seed = 1) {
    this.engine = engine;
    this.config = config;
    const normal = normalSampler(seed);
    const param = (
      name: string,
      shape: number[],
      init: (i: number) => number,
      trainable = true,
    ) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const t = engine.keep(
        engine.tensor(Float32Array.from({ length: size }, (_, i) => init(i)), shape, name),
      );
      t.requiresGrad = trainable;
      this.#named.push({ name, tensor: t });
      return t;
    };
    for (const { name: p, spec, input, bias: hasBias } of planLayers(config)) {
      const channels = input[3];
      if (spec.type === "conv") {
        const fanIn = spec.kernel * spec.kernel * channels;
        const std = Math.sqrt(2 / fanIn);
        const weight = param(
          `${p}.weight`,
          [spec.kernel, spec.kernel, channels, spec.channels],
          () => normal() * std,
        );
        const bias = hasBias ? param(`${p}.bias`, [spec.channels], () => 0) : null;
        this.#trunk.push({ name: p, spec, weight, bias });
      } else if (spec.type === "bn") {
        this.#trunk.push({
          name: p,
          spec,
          gamma: param(`${p}.weight`, [channels], () => 1),
          beta: param(`${p}.bias`, [channels], () => 0),
          mean: param(`${p}.running_mean`, [channels], () => 0, false),
          variance: param(`${p}.running_var`, [channels], () => 1, false),
        });
      } else {
        this.#trunk.push({
          name: p,
          spec: spec as LayerSpec & { type: "relu" | "elu" | "maxpool" },
        });
      }
    }
    const [h, w, c] = trunkOutputShape(config);
    let features = (config.pool === "global-avg" ? c : h * w * c) + (usesSex(config) ? 1 : 0);
    [...config.dense, outputCount(config)].forEach((width, i) => {
      const std = i === config.dense.length ? Math.sqrt(1 / features) : Math.sqrt(2 / features);
      this.#dense.push({
        weight: param(`${headLayer(config, i)}.weight`, [features, width], () => normal() * std),
        bias: param(`${headLayer(config, i)}.bias`, [width], () => 0),
      });
      if (i < config.dense.length && config.dropout > 0) {
        this.#dropouts.push(new Dropout(engine, config.dropout));
      }
      features = width;
    });
  }

  /** Trainable tensors, in checkpoint order. */
  parameters(): Tensor[] {
    return this.#named.filter((n) => n.tensor.requiresGrad).map((n) => n.tensor);
  }

  /** Every tensor a checkpoint stores (parameters and batch-norm running statistics). */
  namedTensors(): ReadonlyArray<Named> {
    return this.#named;
  }

  /**
   * Predicts the normalized targets [N, outputs] (the bone age: [N, 1]) from `images`
   * [N, H, W, 1] (or [N, s, s, 1] with the config's low-resolution training side s) and
   * `male` [N, 1] (1 for boys, 0 for girls; null for a configuration without the sex input).
   * `training` selects batch statistics and dropout.
   * With `step`, dropout masks are seeded by it (so a resumed run draws the same masks).
   */
  forward(images: Tensor, male: Tensor | null, training: boolean, step = 0): Tensor {
    const { inputHeight: H, inputWidth: W, lowRes } = this.config;
    const [, h, w, c] = images.shape;
    const fits = images.shape.length === 4 && c === 1 &&
      ((h === H && w === W) || (h === lowRes?.side && w === lowRes.side));
    if (!fits) {
      const low = lowRes ? ` or [N, ${lowRes.side}, ${lowRes.side}, 1]` : "";
      throw new Error(
        `${this.config.name} model: expected images [N, ${H}, ${W}, 1]${low}, got [${
          images.shape.join(", ")
        }]`,
      );
    }
    // Each op records the layer it belongs to on the tape (the tour names ops by it).
    const tape = this.engine.tape;
    try {
      return this.#layers(images, male, training, step, tape);
    } finally {
      tape.layer = null;
    }
  }

  #layers(
    images: Tensor,
    male: Tensor | null,
    training: boolean,
    step: number,
    tape: Engine["tape"],
  ): Tensor {
    let x = images;
    for (const layer of this.#trunk) {
      tape.layer = layer.name;
      switch (layer.spec.type) {
        case "conv": {
          const { weight, bias } = layer as Extract<TrunkLayer, { weight: Tensor }>;
          x = conv2d(x, weight, bias, { stride: 1, padding: layer.spec.padding });
          break;
        }
        case "bn": {
          const bn = layer as Extract<TrunkLayer, { gamma: Tensor }>;
          x = batchNorm2d(x, bn.gamma, bn.beta, { mean: bn.mean, variance: bn.variance }, {
            training,
          });
          break;
        }
        case "relu":
          x = relu(x);
          break;
        case "elu":
          x = elu(x);
          break;
        case "maxpool":
          x = maxPool2d(x, { kernel: layer.spec.kernel, stride: layer.spec.stride });
          break;
      }
    }
    const n = images.shape[0];
    const pooled = this.config.pool === "global-avg";
    tape.layer = pooled ? "pool" : "flatten";
    x = pooled ? globalAvgPool(x) : reshape(x, [n, x.size / n]);
    if (usesSex(this.config) !== (male !== null)) {
      throw new Error(
        `${this.config.name} model: ${male ? "takes no sex input" : "needs the sex input [N, 1]"}`,
      );
    }
    tape.layer = "sex";
    if (male) x = concatFeatures(x, male);
    this.#dense.forEach(({ weight, bias }, i) => {
      const layer = headLayer(this.config, i);
      tape.layer = layer;
      x = linear(x, weight, bias);
      if (i < this.#dense.length - 1) {
        // nn.Sequential numbering: the activation and the dropout are the modules after it.
        const index = Number(layer.slice("head.".length));
        tape.layer = `head.${index + 1}`;
        x = this.config.activation === "relu" ? relu(x) : elu(x);
        if (this.#dropouts[i]) {
          tape.layer = `head.${index + 2}`;
          x = this.#dropouts[i].forward(x, (step * 16 + i) >>> 0, training);
        }
      }
    });
    return x;
  }
}
