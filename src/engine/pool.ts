/**
 * A pool of GPU storage buffers, reused by exact byte size.
 *
 * A training step allocates the same sequence of sizes every time, so after the first
 * step every request is served from the free lists and `allocations` stops growing.
 *
 * @module
 */

/** Usage flags shared by every pooled buffer: kernels read and write them, copies in/out. */
export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Rounds a byte count up to 16 so that every buffer can be read as `array<vec4<f32>>`. */
export function roundBytes(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/** Buffers by size; counts what it had to create so tests can prove steady state. */
export class BufferPool {
  /** Number of GPU buffers ever created by this pool. */
  allocations = 0;
  /** Bytes of all buffers the pool owns (in use or free). */
  bytesAllocated = 0;
  #free = new Map<number, GPUBuffer[]>();
  #device: GPUDevice;

  /** Creates an empty pool on `device`. */
  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** Returns a free buffer of at least `bytes` (rounded to 16), creating one if none is free. */
  acquire(bytes: number): GPUBuffer {
    const size = roundBytes(bytes);
    const reused = this.#free.get(size)?.pop();
    if (reused) return reused;
    this.allocations++;
    this.bytesAllocated += size;
    return this.#device.createBuffer({ size, usage: STORAGE_USAGE });
  }

  /** Gives a buffer back for reuse. The caller must not touch it afterwards. */
  release(buffer: GPUBuffer): void {
    const list = this.#free.get(buffer.size);
    if (list) list.push(buffer);
    else this.#free.set(buffer.size, [buffer]);
  }

  /** Destroys every free buffer (buffers in use stay alive). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.bytesAllocated -= b.size;
        b.destroy();
      }
    }
    this.#free.clear();
  }
}
