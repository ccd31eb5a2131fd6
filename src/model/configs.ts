/**
 * The bone-age networks, as data: each named configuration lists its layers, and
 * {@link BoneAgeNet} builds parameters for it and runs it with the engine's ops.
 *
 * Every configuration is a VGG-style stack of convolution blocks over the radiograph,
 * then a head that appends the child's sex as one feature (Iglovikov et al. 2017 feed sex
 * to the dense layers) and regresses the normalized bone age.
 *
 * @module
 */

import { type ConvGeometry, outputSize } from "../ops/geometry.ts";

/** One layer of the convolutional trunk. */
export type LayerSpec =
  | { type: "conv"; kernel: number; channels: number; padding: number }
  | { type: "bn" }
  | { type: "relu" }
  | { type: "elu" }
  | { type: "maxpool"; kernel: number; stride: number };

/** A named network configuration. */
export interface ModelConfig {
  /** Configuration name: "tiny", "small", "paper", "keypoints" or "handedness". */
  name: string;
  /** Input height and width in pixels (the radiograph is letterboxed to this). */
  inputHeight: number;
  /** Input width in pixels. */
  inputWidth: number;
  /** The convolutional trunk, in order. */
  trunk: LayerSpec[];
  /** How the trunk's output becomes a feature vector. */
  pool: "global-avg" | "flatten";
  /** Widths of the hidden dense layers of the head. */
  dense: number[];
  /** Activation after each hidden dense layer. */
  activation: "relu" | "elu";
  /** Dropout probability after each hidden dense layer (0 for none). */
  dropout: number;
  /** Width of the last dense layer, the regression targets (default 1: the bone age). */
  outputs?: number;
  /** Whether the child's sex is appended to the pooled features (default true). */
  sex?: boolean;
  /**
   * Progressive resizing (square, global-average-pooled models only): training resamples its
   * images to `side` x `side` until the schedule's progress (`scheduleProgress` in
   * `app/schedule.ts`: warm-up, then steps or time budget, whichever is further) reaches `until`,
   * then uses the full input. Early training learns the coarse features at about half the
   * cost per image; the last part, and all evaluation, see the full input.
   */
  lowRes?: { side: number; until: number };
}

const conv = (channels: number, kernel = 3): LayerSpec => ({
  type: "conv",
  kernel,
  channels,
  padding: (kernel - 1) / 2,
});

/** [conv3x3 -> BN -> ReLU] x2 -> max-pool 2: the block of the `small` and `tiny` models. */
function vggBlock(channels: number, convs = 2): LayerSpec[] {
  const layers: LayerSpec[] = [];
  for (let i = 0; i < convs; i++) layers.push(conv(channels), { type: "bn" }, { type: "relu" });
  layers.push({ type: "maxpool", kernel: 2, stride: 2 });
  return layers;
}

/** [conv3x3 -> ELU -> BN -> conv1x1 -> ELU -> BN -> max-pool 3/2]: the paper's block. */
function paperBlock(channels: number): LayerSpec[] {
  return [
    conv(channels, 3),
    { type: "elu" },
    { type: "bn" },
    conv(channels, 1),
    { type: "elu" },
    { type: "bn" },
    { type: "maxpool", kernel: 3, stride: 2 },
  ];
}

/** The named configurations. */
export const CONFIGS: Readonly<Record<string, ModelConfig>> = {
  /** For tests: two small blocks on 32x32 input; trains in seconds on a CPU adapter. */
  tiny: {
    name: "tiny",
    inputHeight: 32,
    inputWidth: 32,
    trunk: [...vggBlock(8, 1), ...vggBlock(16, 1)],
    pool: "global-avg",
    dense: [16],
    activation: "relu",
    dropout: 0,
    lowRes: { side: 24, until: 0.5 },
  },
  /** For machines without a GPU: 96x96, four VGG blocks of 16-128 channels. */
  small: {
    name: "small",
    inputHeight: 96,
    inputWidth: 96,
    trunk: [16, 32, 64, 128].flatMap((c) => vggBlock(c)),
    pool: "global-avg",
    dense: [64],
    activation: "relu",
    dropout: 0,
    lowRes: { side: 64, until: 0.5 },
  },
  /** The paper-sized network for a real GPU: 500x375 input, six blocks, dense 2048x2. */
  paper: {
    name: "paper",
    inputHeight: 500,
    inputWidth: 375,
    trunk: [32, 64, 128, 128, 256, 384].flatMap(paperBlock),
    pool: "flatten",
    dense: [2048, 2048],
    activation: "elu",
    dropout: 0.3,
  },
  /**
   * The hand keypoint regressor behind registration (`deno task keypoints`): 64x64 input, four
   * one-convolution VGG blocks, the 4x4 map flattened (global pooling would discard where the
   * hand is) and a dense head regressing the x, y of each point of `KEYPOINTS`
   * (`src/data/keypoints.ts`) as fractions of the frame. No sex input.
   */
  keypoints: {
    name: "keypoints",
    inputHeight: 64,
    inputWidth: 64,
    trunk: [16, 32, 64, 128].flatMap((c) => vggBlock(c, 2)),
    pool: "flatten",
    dense: [128],
    activation: "relu",
    dropout: 0,
    outputs: 6,
    sex: false,
  },
  /**
   * Which hand a radiograph shows, before its points are looked for (`deno task keypoints`
   * trains it beside the keypoint model): the keypoint trunk at half the width, one output
   * regressed to +1 for a left hand as the RSNA radiographs show it and -1 for its mirror
   * image, a right hand. No sex input.
   */
  handedness: {
    name: "handedness",
    inputHeight: 64,
    inputWidth: 64,
    trunk: [8, 16, 32, 64].flatMap((c) => vggBlock(c, 2)),
    pool: "flatten",
    dense: [32],
    activation: "relu",
    dropout: 0,
    outputs: 1,
    sex: false,
  },
};

/** Regression targets of `config`'s last dense layer. */
export const outputCount = (config: ModelConfig): number => config.outputs ?? 1;

/** Whether `config` appends the child's sex to its pooled features. */
export const usesSex = (config: ModelConfig): boolean => config.sex ?? true;

/**
 * Name of the head's dense layer `i` (0 = first hidden, `dense.length` = output): its index in
 * PyTorch's `nn.Sequential(Linear, activation, [Dropout], Linear, ...)`, so a head built that
 * way loads the checkpoint's `head.N.weight` / `head.N.bias` as they are.
 */
export const headLayer = (config: ModelConfig, i: number): string =>
  `head.${i * (config.dropout > 0 ? 3 : 2)}`;

/** The configuration called `name`; throws listing the known names otherwise. */
export function getConfig(name: string): ModelConfig {
  const config = CONFIGS[name];
  if (!config) {
    throw new Error(`unknown config "${name}": choose one of ${Object.keys(CONFIGS).join(", ")}`);
  }
  return config;
}

/** One trunk layer as a configuration lays it out, with the shapes in and out of it. */
export interface PlannedLayer {
  /** Position in `config.trunk`; the layer's tensors are named `<name>.weight` etc. */
  index: number;
  /** `trunk.<index>`. */
  name: string;
  spec: LayerSpec;
  /** `[N, H, W, C]` entering the layer. */
  input: [number, number, number, number];
  /** `[N, H, W, C]` leaving it. */
  output: [number, number, number, number];
  /** A conv's geometry, or a max-pool's window (`Cout = Cin`, no padding); null otherwise. */
  window: ConvGeometry | null;
  /** Whether a conv has a bias: not when batch norm follows, whose beta replaces it. */
  bias: boolean;
}

/**
 * The one walk of a configuration's trunk: each layer with its shapes at batch `N` for an
 * input of `side` (default: the configuration's input; the low-resolution phase of training
 * passes its own). The model builds its parameters from it, the float64 network and the tour
 * follow it, and the benchmark times its convolutions.
 */
export function planLayers(
  config: ModelConfig,
  N = 1,
  side: readonly [number, number] = [config.inputHeight, config.inputWidth],
): PlannedLayer[] {
  let [H, W, C] = [side[0], side[1], 1];
  return config.trunk.map((spec, index) => {
    const input: PlannedLayer["input"] = [N, H, W, C];
    let window: ConvGeometry | null = null;
    if (spec.type === "conv" || spec.type === "maxpool") {
      const conv = spec.type === "conv";
      window = {
        N,
        H,
        W,
        Cin: C,
        Cout: conv ? spec.channels : C,
        KH: spec.kernel,
        KW: spec.kernel,
        stride: conv ? 1 : spec.stride,
        padding: conv ? spec.padding : 0,
      };
      ({ OH: H, OW: W } = outputSize(window));
      C = window.Cout;
    }
    return {
      index,
      name: `trunk.${index}`,
      spec,
      input,
      output: [N, H, W, C],
      window,
      bias: spec.type === "conv" && config.trunk[index + 1]?.type !== "bn",
    };
  });
}

/** `[H, W, C]` leaving the trunk for the configuration's input. */
export function trunkOutputShape(config: ModelConfig): [number, number, number] {
  const [, H, W, C] = planLayers(config).at(-1)!.output;
  return [H, W, C];
}
