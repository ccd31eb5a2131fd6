/**
 * Float64 CPU reference of Adam / AdamW (`src/model/optim.ts`, `kernels/adam.wgsl`), written the
 * textbook way (explicit bias-corrected moments) so it checks the kernel's folded form.
 *
 * @module
 */

/** Hyper-parameters, as in `AdamOptions`. */
export interface AdamRefOptions {
  /** Learning rate. */
  lr: number;
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999). */
  beta2?: number;
  /** Denominator epsilon (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0). */
  weightDecay?: number;
}

/** Float64 Adam/AdamW state that updates `params` in place. */
export class AdamRef {
  /** Parameters (updated in place). */
  params: Float64Array[];
  /** First moments. */
  m: Float64Array[];
  /** Second moments. */
  v: Float64Array[];
  /** Steps taken. */
  t = 0;
  #o: Required<AdamRefOptions>;

  /** Copies `params` and zeroes the moments. */
  constructor(params: Float64Array[], options: AdamRefOptions) {
    this.params = params.map((p) => p.slice());
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
    this.#o = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, ...options };
  }

  /** One step with gradients `grads` (same order as the params). */
  step(grads: Float64Array[], lr = this.#o.lr): void {
    const { beta1, beta2, eps, weightDecay } = this.#o;
    this.t++;
    this.params.forEach((p, j) => {
      const [m, v, g] = [this.m[j], this.v[j], grads[j]];
      for (let i = 0; i < p.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        const mHat = m[i] / (1 - beta1 ** this.t);
        const vHat = v[i] / (1 - beta2 ** this.t);
        p[i] -= lr * weightDecay * p[i];
        p[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
      }
    });
  }
}
