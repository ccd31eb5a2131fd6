/**
 * Reverse-mode autograd in one screen.
 *
 * Every op that has an input with `requiresGrad` appends an entry to the tape: its inputs,
 * its output and a `backward` closure that records the op's backward kernels. Creation order
 * is a valid topological order, so `gradients` walks the tape from the end, hands each entry
 * the gradient of its output and adds what comes back into the gradients of its inputs.
 * A tensor used twice (a skip connection, `x * x`) simply receives two contributions.
 *
 * Each entry also says what it computed (its `attrs`: shapes, geometry, options) and in which
 * layer of the model (`layer`, set by the model while it builds that layer), so a reader of
 * the tape (the tour) can check every op against its float64 twin without redoing the pass.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";

/**
 * Records the backward kernels of one op. Gets the gradient of the op's output and which
 * inputs need a gradient; returns one gradient per input (null where not needed).
 */
export type Backward = (dOutput: Tensor, needsGrad: readonly boolean[]) => (Tensor | null)[];

/** What an op computed, beyond its input tensors: sizes, geometry, options. */
export type OpAttrs = Readonly<Record<string, number | boolean | string>>;

/** One recorded op. */
export interface TapeEntry {
  /** Op name, e.g. "conv2d". */
  op: string;
  /** See {@link OpAttrs}; e.g. a convolution's geometry. */
  attrs: OpAttrs;
  /** The model layer that recorded it (`Tape.layer` at the time), e.g. "trunk.0". */
  layer: string | null;
  /** The op's inputs, in the order `backward` returns their gradients. */
  inputs: Tensor[];
  /** The op's output. */
  output: Tensor;
  /** Records the op's backward kernels. */
  backward: Backward;
}

/** Sees one entry's backward: the gradient of its output and those of its inputs. */
export type GradientObserver = (
  entry: TapeEntry,
  dOutput: Tensor,
  dInputs: readonly (Tensor | null)[],
) => void;

/** The tape of recorded ops. */
export class Tape {
  /** Recorded ops, oldest first. */
  entries: TapeEntry[] = [];
  /** The layer being built, stamped on each entry; the model sets it, null elsewhere. */
  layer: string | null = null;
  #paused = 0;

  /** True unless inside `withoutRecording`. */
  get recording(): boolean {
    return this.#paused === 0;
  }

  /** Appends an op if recording and any input requires a gradient; marks the output. */
  record(
    op: string,
    inputs: Tensor[],
    output: Tensor,
    backward: Backward,
    attrs: OpAttrs = {},
  ): void {
    if (!this.recording || !inputs.some((t) => t.requiresGrad)) return;
    output.requiresGrad = true;
    this.entries.push({ op, attrs, layer: this.layer, inputs, output, backward });
  }

  /** Runs `fn` without recording (inference, optimizer updates). */
  withoutRecording<T>(fn: () => T): T {
    this.#paused++;
    try {
      return fn();
    } finally {
      this.#paused--;
    }
  }

  /**
   * Backpropagates from `loss` (seeded with `seed`, normally ones) through the whole tape
   * and returns the gradient of every tensor in `wrt`. Clears the tape.
   * `add` sums two gradients of the same tensor. `observe`, if given, sees each entry after
   * its backward ran, with the gradient it received and the ones it returned.
   */
  gradients(
    loss: Tensor,
    wrt: readonly Tensor[],
    seed: Tensor,
    add: (a: Tensor, b: Tensor) => Tensor,
    observe?: GradientObserver,
  ): Map<Tensor, Tensor> {
    const grads = new Map<Tensor, Tensor>([[loss, seed]]);
    const entries = this.entries;
    this.entries = [];
    this.withoutRecording(() => {
      for (let k = entries.length - 1; k >= 0; k--) {
        const { op, inputs, output, backward } = entries[k];
        const dOutput = grads.get(output);
        if (!dOutput) continue;
        const needs = inputs.map((t) => t.requiresGrad);
        const dInputs = backward(dOutput, needs);
        inputs.forEach((input, i) => {
          const g = dInputs[i];
          if (!needs[i]) return;
          if (!g) throw new Error(`autograd: ${op} returned no gradient for input ${i}`);
          const previous = grads.get(input);
          grads.set(input, previous ? add(previous, g) : g);
        });
        observe?.(entries[k], dOutput, dInputs.map((g, i) => (needs[i] ? g : null)));
      }
    });
    const result = new Map<Tensor, Tensor>();
    for (const t of wrt) {
      const g = grads.get(t);
      if (!g) {
        throw new Error(`autograd: ${t.name ?? "a tensor"} received no gradient from the loss`);
      }
      result.set(t, g);
    }
    return result;
  }

  /** Drops entries whose output was disposed (a forward pass that never ran backward). */
  prune(): void {
    this.entries = this.entries.filter((e) => !e.output.disposed);
  }
}
