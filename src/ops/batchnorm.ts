/**
 * Batch normalization over the channels of an NHWC batch `[N, H, W, C]` (or of a feature
 * batch `[N, F]`, treated as `[N, 1, 1, F]`), with PyTorch's semantics:
 *
 * - training: per-channel mean and biased variance over the M = N*H*W rows normalize the
 *   batch, and the running statistics move towards the batch ones in place
 *   (`running = (1 - momentum) * running + momentum * batch`, unbiased variance);
 * - evaluation: the running statistics normalize, nothing is updated.
 *
 * Every sum over rows is a `sumMiddle` on the GPU; the variance is the mean of squared
 * deviations (a second pass), which stays accurate when |mean| >> std.
 * Kernels: `batchnorm2d_*.wgsl`. CPU twin: `src/ref/batchnorm.ts`.
 *
 * @module
 */
import { grid } from "../engine/engine.ts";
import { assertSameShape, showShape, type Tensor } from "../engine/tensor.ts";
import { sumMiddle } from "./reduce.ts";

/** Running statistics of one batch-norm layer, `[C]` each, updated in place in training. */
export interface RunningStats {
  /** Running mean, initially 0. */
  mean: Tensor;
  /** Running (unbiased) variance, initially 1. */
  variance: Tensor;
}

/** Mode and hyper-parameters of {@link batchNorm2d}. */
export interface BatchNormOptions {
  /** Normalize with batch statistics and update the running ones (true) or use them (false). */
  training: boolean;
  /** Weight of the new batch in the running statistics (default 0.1, as PyTorch). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
}

/**
 * Batch norm of `x` (`[N, H, W, C]` or `[N, C]`) with per-channel scale `gamma` and shift
 * `beta` (`[C]` each): `y = gamma * (x - mean) / sqrt(var + eps) + beta`. See the module doc
 * for training versus evaluation. Records a backward that yields gradients of x, gamma and
 * beta; the statistics it normalized with are saved for it.
 */
export function batchNorm2d(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  running: RunningStats,
  options: BatchNormOptions,
): Tensor {
  const e = x.engine;
  const { training, momentum = 0.1, eps = 1e-5 } = options;
  if (x.shape.length !== 4 && x.shape.length !== 2) {
    throw new Error(
      `batchNorm2d: expected input [N, H, W, C] or [N, C], got ${showShape(x.shape)}`,
    );
  }
  const C = x.shape[x.shape.length - 1];
  const M = x.size / C;
  const perChannel = [
    ["gamma", gamma],
    ["beta", beta],
    ["running mean", running.mean],
    ["running variance", running.variance],
  ] as const;
  for (const [name, t] of perChannel) {
    if (t.shape.length !== 1 || t.shape[0] !== C) {
      throw new Error(
        `batchNorm2d: ${name} ${showShape(t.shape)} does not match the ${C} channels of ` +
          `input ${showShape(x.shape)} (expected [${C}])`,
      );
    }
  }
  if (!(momentum >= 0 && momentum <= 1)) {
    throw new Error(`batchNorm2d: momentum must be in [0, 1], got ${momentum}`);
  }
  if (!(eps > 0)) throw new Error(`batchNorm2d: eps must be positive, got ${eps}`);
  if (training && M < 2) {
    // The unbiased variance M / (M - 1) is undefined; PyTorch refuses this case too.
    throw new Error(
      `batchNorm2d: training needs more than one value per channel, got input ${
        showShape(x.shape)
      }`,
    );
  }

  const n4 = Math.ceil(x.size / 4);
  const elementwise = (kernel: string, constants: Record<string, number> = {}) => ({
    kernel,
    constants: { N4: n4, C, ...constants },
    dispatch: grid(n4),
  });
  const mean = training ? sumMiddle(x, 1, M, C, 1 / M, [C]) : e.empty([C]);
  const invstd = e.empty([C]);
  if (training) {
    const sq = e.empty(x.shape);
    e.run(elementwise("batchnorm2d_sqdev.wgsl"), { x, mean, sq });
    const variance = sumMiddle(sq, 1, M, C, 1 / M, [C]);
    sq.dispose();
    e.run({
      kernel: "batchnorm2d_train_stats.wgsl",
      constants: { C, EPS: eps, MOMENTUM: momentum, UNBIAS: M / (M - 1) },
      dispatch: grid(C),
    }, { mean, variance, invstd, runMean: running.mean, runVar: running.variance });
    variance.dispose();
  } else {
    e.run({
      kernel: "batchnorm2d_eval_stats.wgsl",
      constants: { C, EPS: eps },
      dispatch: grid(C),
    }, { runMean: running.mean, runVar: running.variance, mean, invstd });
  }
  const y = e.empty(x.shape);
  e.run(elementwise("batchnorm2d_forward.wgsl"), { x, mean, invstd, gamma, beta, y });

  e.tape.record("batchNorm2d", [x, gamma, beta], y, (dy, needs) => {
    assertSameShape("batchNorm2d backward", dy, x, ["gradient", "input"]);
    const [needX, needGamma, needBeta] = needs;
    // Training-mode dx needs both sums; otherwise each sum only for its own parameter.
    const sumDy = needBeta || (training && needX) ? sumMiddle(dy, 1, M, C, 1, [C]) : null;
    let sumDyXhat: Tensor | null = null;
    if (needGamma || (training && needX)) {
      const p = e.empty(x.shape);
      e.run(elementwise("batchnorm2d_dyxhat.wgsl"), { x, dy, mean, invstd, p });
      sumDyXhat = sumMiddle(p, 1, M, C, 1, [C]);
      p.dispose();
    }
    let dx: Tensor | null = null;
    if (needX) {
      dx = e.empty(x.shape);
      if (training) {
        e.run(
          elementwise("batchnorm2d_backward.wgsl", { INV_M: 1 / M }),
          { x, dy, mean, invstd, gamma, sumDy: sumDy!, sumDyXhat: sumDyXhat!, dx },
        );
      } else {
        e.run(elementwise("batchnorm2d_backward_eval.wgsl"), { dy, invstd, gamma, dx });
      }
    }
    if (!needGamma) sumDyXhat?.dispose();
    if (!needBeta) sumDy?.dispose();
    return [dx, needGamma ? sumDyXhat : null, needBeta ? sumDy : null];
  }, { M, C, eps, momentum, training });
  // Not recorded (no parameter needs a gradient, or inside noGrad): nothing will read them.
  if (!y.requiresGrad) {
    mean.dispose();
    invstd.dispose();
  }
  return y;
}
