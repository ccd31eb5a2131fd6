/**
 * Adam and AdamW (decoupled weight decay, PyTorch's formulation), one `adam.wgsl` dispatch
 * per parameter. CPU twin: `src/ref/optim.ts`.
 *
 * The moment tensors `m`, `v` and a four-float "step params" tensor are allocated once and
 * kept out of tidy scopes. The values that change every step (learning rate, bias
 * corrections) are written into the step params tensor with `engine.write`, so a step
 * allocates no GPU buffers and compiles no pipelines after the first.
 *
 * @module
 */
import type { Engine } from "../engine/engine.ts";
import { grid } from "../engine/engine.ts";
import { assertSameShape, showShape, type Tensor } from "../engine/tensor.ts";

/** Hyper-parameters of {@link Adam}. */
export interface AdamOptions {
  /** Learning rate (a step may override it). */
  lr: number;
  /** Decay of the first moment; default 0.9. */
  beta1?: number;
  /** Decay of the second moment; default 0.999. */
  beta2?: number;
  /** Added to `sqrt(v_hat)`; default 1e-8. */
  eps?: number;
  /** Decoupled (AdamW) weight decay: `p *= 1 - lr * weightDecay` each step; default 0. */
  weightDecay?: number;
}

/** A checkpointable snapshot of the optimizer: step count and both moments per parameter. */
export interface AdamState {
  /** Number of steps taken (the `t` of the bias corrections). */
  step: number;
  /** First moments, in parameter order. */
  m: Float32Array[];
  /** Second moments, in parameter order. */
  v: Float32Array[];
}

/** Adam / AdamW over a fixed list of parameter tensors. */
export class Adam {
  /** The parameters updated in place, in the order of `state()`. */
  readonly params: readonly Tensor[];
  /** Default learning rate of `step`. */
  lr: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator epsilon. */
  readonly eps: number;
  /** Decoupled weight decay (0: plain Adam). */
  readonly weightDecay: number;
  #engine: Engine;
  #m: Tensor[];
  #v: Tensor[];
  #stepParams: Tensor;
  #step = 0;

  /** Allocates zeroed moments for every parameter. */
  constructor(engine: Engine, params: Tensor[], options: AdamOptions) {
    const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = options;
    for (
      const [name, value, ok] of [
        ["lr", lr, lr >= 0],
        ["beta1", beta1, beta1 >= 0 && beta1 < 1],
        ["beta2", beta2, beta2 >= 0 && beta2 < 1],
        ["eps", eps, eps > 0],
        ["weightDecay", weightDecay, weightDecay >= 0],
      ] as const
    ) {
      if (!ok || !Number.isFinite(value)) throw new Error(`Adam: invalid ${name} ${value}`);
    }
    if (new Set(params).size !== params.length) {
      throw new Error("Adam: the same parameter tensor is listed twice");
    }
    this.#engine = engine;
    this.params = [...params];
    this.lr = lr;
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.#m = params.map((p) => engine.keep(engine.full(p.shape, 0, `adam m ${p.name ?? ""}`)));
    this.#v = params.map((p) => engine.keep(engine.full(p.shape, 0, `adam v ${p.name ?? ""}`)));
    this.#stepParams = engine.keep(engine.full([4], 0, "adam step params"));
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.#step;
  }

  /**
   * Records one update of every parameter from `grads` (which must hold a same-shape
   * gradient for each). `lr` overrides the default learning rate for this step only.
   */
  step(grads: Map<Tensor, Tensor>, lr: number = this.lr): void {
    if (!(lr >= 0 && Number.isFinite(lr))) throw new Error(`Adam.step: invalid lr ${lr}`);
    const gradList = this.params.map((p, i) => {
      const g = grads.get(p);
      if (!g) {
        throw new Error(
          `Adam.step: no gradient for parameter ${i} (${p.name ?? "unnamed"} ${
            showShape(p.shape)
          })`,
        );
      }
      assertSameShape("Adam.step", p, g, ["param", "grad"]);
      return g;
    });
    const e = this.#engine;
    const t = this.#step + 1;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    e.write(this.#stepParams, [lr / bc1, 1 / Math.sqrt(bc2), 1 - lr * this.weightDecay, 0]);
    this.params.forEach((p, i) => {
      const n4 = Math.ceil(p.size / 4);
      e.run({
        kernel: "adam.wgsl",
        constants: { N4: n4, BETA1: this.beta1, BETA2: this.beta2, EPS: this.eps },
        dispatch: grid(n4),
      }, { params: this.#stepParams, grad: gradList[i], p, m: this.#m[i], v: this.#v[i] });
    });
    this.#step = t;
  }

  /** Reads back the step count and both moments (for checkpoints). */
  async state(): Promise<AdamState> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < this.params.length; i++) {
      m.push(await this.#m[i].read());
      v.push(await this.#v[i].read());
    }
    return { step: this.#step, m, v };
  }

  /** Restores a snapshot from `state()`; sizes must match the parameters. */
  loadState(state: AdamState): void {
    const n = this.params.length;
    if (state.m.length !== n || state.v.length !== n) {
      throw new Error(
        `Adam.loadState: state has ${state.m.length} m / ${state.v.length} v arrays for ${n} parameters`,
      );
    }
    if (!(Number.isInteger(state.step) && state.step >= 0)) {
      throw new Error(`Adam.loadState: invalid step ${state.step}`);
    }
    this.params.forEach((p, i) => {
      for (const [name, a] of [["m", state.m[i]], ["v", state.v[i]]] as const) {
        if (a.length !== p.size) {
          throw new Error(
            `Adam.loadState: ${name}[${i}] has ${a.length} values for parameter ${
              showShape(p.shape)
            }`,
          );
        }
      }
      this.#engine.write(this.#m[i], state.m[i]);
      this.#engine.write(this.#v[i], state.v[i]);
    });
    this.#step = state.step;
  }

  /** Frees the moments and the step params tensor. */
  dispose(): void {
    for (const t of [...this.#m, ...this.#v, this.#stepParams]) t.dispose();
  }
}
