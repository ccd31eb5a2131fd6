/**
 * Reverse-mode autograd in one screen.
 *
 * Every op that has an input with `requiresGrad` appends an entry to the tape: its inputs,
 * its output and a `backward` closure that records the op's backward kernels. Creation order
 * is a valid topological order, so `gradients` walks the tape from the end, hands each entry
 * the gradient of its output and adds what comes back into the gradients of its inputs.
 * A tensor used twice (a skip connection, `x * x`) simply receives two contributions.
 *
 * @module
 */
import type { Tensor } from "./tensor.ts";

/**
 * Records the backward kernels of one op. Gets the gradient of the op's output and which
 * inputs need a gradient; returns one gradient per input (null where not needed).
 */
export type Backward = (dOutput: Tensor, needsGrad: readonly boolean[]) => (Tensor | null)[];

/** One recorded op. */
export interface TapeEntry {
  /** Op name, e.g. "conv2d". */
  op: string;
  /** The op's inputs, in the order `backward` returns their gradients. */
  inputs: Tensor[];
  /** The op's output. */
  output: Tensor;
  /** Records the op's backward kernels. */
  backward: Backward;
}

/** The tape of recorded ops. */
export class Tape {
  /** Recorded ops, oldest first. */
  entries: TapeEntry[] = [];
  #paused = 0;

  /** True unless inside `withoutRecording`. */
  get recording(): boolean {
    return this.#paused === 0;
  }

  /** Appends an op if recording and any input requires a gradient; marks the output. */
  record(op: string, inputs: Tensor[], output: Tensor, backward: Backward): void {
    if (!this.recording || !inputs.some((t) => t.requiresGrad)) return;
    output.requiresGrad = true;
    this.entries.push({ op, inputs, output, backward });
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
   * `add` sums two gradients of the same tensor.
   */
  gradients(
    loss: Tensor,
    wrt: readonly Tensor[],
    seed: Tensor,
    add: (a: Tensor, b: Tensor) => Tensor,
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
