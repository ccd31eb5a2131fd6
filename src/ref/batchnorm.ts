/**
 * Float64 CPU reference of batch normalization, the twin of `kernels/batchnorm2d_*.wgsl`.
 *
 * The input is viewed as `[M, C]`: for an NHWC image batch `M = N * H * W` rows, for a
 * feature batch `[N, F]` simply `M = N` and `C = F`. Every channel c is normalized with its
 * own statistics over the M rows:
 *
 *     xhat = (x - mean) / sqrt(var + eps)        y = gamma * xhat + beta
 *
 * In training, mean and (biased) var come from the batch and the running statistics move
 * towards them; in evaluation the running statistics are used instead.
 *
 * @module
 */

/** Per-channel batch statistics. */
export interface BatchStats {
  /** Mean of each channel over the M rows. */
  mean: Float64Array;
  /** Biased variance (divided by M) of each channel: what normalization uses. */
  variance: Float64Array;
}

/** Batch mean and biased variance of each channel of `x` `[M, C]`, in two passes. */
export function batchStats(x: Float64Array, M: number, C: number): BatchStats {
  const mean = new Float64Array(C);
  for (let r = 0; r < M; r++) for (let c = 0; c < C; c++) mean[c] += x[r * C + c];
  for (let c = 0; c < C; c++) mean[c] /= M;
  const variance = new Float64Array(C);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < C; c++) variance[c] += (x[r * C + c] - mean[c]) ** 2;
  }
  for (let c = 0; c < C; c++) variance[c] /= M;
  return { mean, variance };
}

/** `y = gamma * (x - mean) / sqrt(var + eps) + beta` per channel, for given statistics. */
export function batchNormApply(
  x: Float64Array,
  M: number,
  C: number,
  gamma: Float64Array,
  beta: Float64Array,
  mean: Float64Array,
  variance: Float64Array,
  eps: number,
): Float64Array {
  const y = new Float64Array(M * C);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < C; c++) {
      const xhat = (x[r * C + c] - mean[c]) / Math.sqrt(variance[c] + eps);
      y[r * C + c] = gamma[c] * xhat + beta[c];
    }
  }
  return y;
}

/** Training-mode forward: normalizes with the batch statistics and returns them too. */
export function batchNormTrainForward(
  x: Float64Array,
  M: number,
  C: number,
  gamma: Float64Array,
  beta: Float64Array,
  eps: number,
): BatchStats & { y: Float64Array } {
  const stats = batchStats(x, M, C);
  return { ...stats, y: batchNormApply(x, M, C, gamma, beta, stats.mean, stats.variance, eps) };
}

/**
 * PyTorch's running-statistics update after one training batch:
 * `running = (1 - m) * running + m * batch`, where the variance fed in is the *unbiased*
 * batch variance (times M / (M - 1)) even though normalization used the biased one.
 */
export function updateRunningStats(
  runningMean: Float64Array,
  runningVariance: Float64Array,
  batch: BatchStats,
  M: number,
  momentum: number,
): { mean: Float64Array; variance: Float64Array } {
  const mean = runningMean.map((rm, c) => (1 - momentum) * rm + momentum * batch.mean[c]);
  const variance = runningVariance.map((rv, c) =>
    (1 - momentum) * rv + momentum * batch.variance[c] * M / (M - 1)
  );
  return { mean, variance };
}

/** Gradients of batch norm with respect to its input and parameters. */
export interface BatchNormGrads {
  /** Gradient of the input, `[M, C]`. */
  dx: Float64Array;
  /** Gradient of gamma, `sum_r dy * xhat`. */
  dgamma: Float64Array;
  /** Gradient of beta, `sum_r dy`. */
  dbeta: Float64Array;
}

/**
 * Training-mode backward. Because mean and var depend on every x of the channel, dx has two
 * correction terms besides `dy`:
 *
 *     dx = gamma / sqrt(var + eps) * (dy - mean_r(dy) - xhat * mean_r(dy * xhat))
 */
export function batchNormTrainBackward(
  dy: Float64Array,
  x: Float64Array,
  M: number,
  C: number,
  gamma: Float64Array,
  eps: number,
): BatchNormGrads {
  const { mean, variance } = batchStats(x, M, C);
  const invstd = variance.map((v) => 1 / Math.sqrt(v + eps));
  const xhat = (r: number, c: number) => (x[r * C + c] - mean[c]) * invstd[c];
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < C; c++) {
      dgamma[c] += dy[r * C + c] * xhat(r, c);
      dbeta[c] += dy[r * C + c];
    }
  }
  const dx = new Float64Array(M * C);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < C; c++) {
      dx[r * C + c] = gamma[c] * invstd[c] *
        (dy[r * C + c] - dbeta[c] / M - xhat(r, c) * dgamma[c] / M);
    }
  }
  return { dx, dgamma, dbeta };
}

/**
 * Evaluation-mode backward: the statistics are constants, so batch norm is a per-channel
 * affine map and `dx = gamma * dy / sqrt(runningVar + eps)`.
 */
export function batchNormEvalBackward(
  dy: Float64Array,
  x: Float64Array,
  M: number,
  C: number,
  gamma: Float64Array,
  runningMean: Float64Array,
  runningVariance: Float64Array,
  eps: number,
): BatchNormGrads {
  const invstd = runningVariance.map((v) => 1 / Math.sqrt(v + eps));
  const dx = new Float64Array(M * C);
  const dgamma = new Float64Array(C);
  const dbeta = new Float64Array(C);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < C; c++) {
      const i = r * C + c;
      dx[i] = gamma[c] * invstd[c] * dy[i];
      dgamma[c] += dy[i] * (x[i] - runningMean[c]) * invstd[c];
      dbeta[c] += dy[i];
    }
  }
  return { dx, dgamma, dbeta };
}
