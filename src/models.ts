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

/** One layer of the convolutional trunk. */
export type LayerSpec =
  | { type: "conv"; kernel: number; channels: number; padding: number }
  | { type: "bn" }
  | { type: "relu" }
  | { type: "elu" }
  | { type: "maxpool"; kernel: number; stride: number };

/** A named network configuration. */
export interface ModelConfig {
  /** Configuration name: "tiny", "small", "paper" or "keypoints". */
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
   * `training.ts`: warm-up, then steps or time budget, whichever is further) reaches `until`,
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

/**
 * [height, width, channels] entering each trunk layer, following every layer; the extra last
 * entry is the trunk's output.
 */
export function trunkShapes(config: ModelConfig): [number, number, number][] {
  let [h, w, c] = [config.inputHeight, config.inputWidth, 1];
  const shapes: [number, number, number][] = [[h, w, c]];
  for (const layer of config.trunk) {
    if (layer.type === "conv") {
      h = h + 2 * layer.padding - layer.kernel + 1;
      w = w + 2 * layer.padding - layer.kernel + 1;
      c = layer.channels;
    } else if (layer.type === "maxpool") {
      h = Math.floor((h - layer.kernel) / layer.stride) + 1;
      w = Math.floor((w - layer.kernel) / layer.stride) + 1;
    }
    shapes.push([h, w, c]);
  }
  return shapes;
}

/** Output [height, width, channels] of the trunk for `config`. */
export function trunkOutputShape(config: ModelConfig): [number, number, number] {
  return trunkShapes(config).at(-1)!;
}
