/**
 * The f32 tensor: a shape and a pooled GPU buffer, nothing else.
 *
 * Layout is NHWC for images (channels innermost), [N, F] for features. Shapes are checked
 * when a tensor is built and by every op; a mismatch names the op and both shapes.
 *
 * @module
 */
import type { Engine } from "./engine.ts";

/** A tensor shape: non-negative integer extents, outermost first. */
export type Shape = readonly number[];

/** Number of elements of `shape`. */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape as `[32, 96, 96, 16]` for error messages. */
export function showShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** Throws unless every extent of `shape` is a positive integer. */
export function checkShape(shape: Shape, where: string): void {
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new Error(
      `${where}: invalid shape ${showShape(shape)} (extents must be positive integers)`,
    );
  }
}

/** Throws `op: shapes differ, a [..] vs b [..]` unless `a` and `b` have the same shape. */
export function assertSameShape(op: string, a: Tensor, b: Tensor, names = ["a", "b"]): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(
      `${op}: shapes differ, ${names[0]} ${showShape(a.shape)} vs ${names[1]} ${
        showShape(b.shape)
      }`,
    );
  }
}

/** Throws `op: expected NAME of rank R, got [..]` when `t` does not have rank `rank`. */
export function assertRank(op: string, t: Tensor, rank: number, name = "input"): void {
  if (t.shape.length !== rank) {
    throw new Error(`${op}: expected ${name} of rank ${rank}, got ${showShape(t.shape)}`);
  }
}

/** An f32 tensor living in a GPU buffer borrowed from the engine's pool. */
export class Tensor {
  /** Extents, outermost first (NHWC for images). */
  readonly shape: Shape;
  /** Number of elements. */
  readonly size: number;
  /** The engine that owns the buffer. */
  readonly engine: Engine;
  /** True for parameters and for every result computed from one while recording. */
  requiresGrad = false;
  /** Optional label used in error messages and by the tour. */
  name: string | undefined;
  #buffer: GPUBuffer | null;

  /** Wraps `buffer`; use `engine.empty` or `engine.tensor` rather than calling this. */
  constructor(engine: Engine, shape: Shape, buffer: GPUBuffer, name?: string) {
    checkShape(shape, name ?? "tensor");
    this.engine = engine;
    this.shape = [...shape];
    this.size = sizeOf(shape);
    this.name = name;
    this.#buffer = buffer;
  }

  /** The GPU buffer; throws if the tensor was disposed. */
  get buffer(): GPUBuffer {
    if (!this.#buffer) {
      throw new Error(
        `tensor ${this.name ?? ""}${showShape(this.shape)} used after dispose`,
      );
    }
    return this.#buffer;
  }

  /** True once `dispose` ran. */
  get disposed(): boolean {
    return this.#buffer === null;
  }

  /** Returns the buffer to the pool. Safe to call twice. */
  dispose(): void {
    if (!this.#buffer) return;
    this.engine.releaseBuffer(this.#buffer);
    this.#buffer = null;
  }

  /** Reads the values back to the CPU (flushes pending GPU work first). */
  read(): Promise<Float32Array> {
    return this.engine.read(this);
  }

  /** Reads a one-element tensor as a number. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new Error(`item: expected one element, got ${showShape(this.shape)}`);
    }
    return (await this.read())[0];
  }
}
