/**
 * The engine: runs WGSL kernels on tensors, records them into one command encoder, and
 * manages buffers (pool + tidy scopes) and the autograd tape.
 *
 * A kernel launch is described by a {@link Program}: which `.wgsl` file, which `override`
 * constants specialize it (shapes, tile sizes), the workgroup size its dispatch assumes and
 * how many workgroups to dispatch; its buffers are bound by the names the kernel declares.
 * The engine reads each kernel (includes expanded) and its interface (`kernel_source.ts`)
 * once, builds explicit bind-group layouts from it and checks every program against it, so a
 * wrong binding or workgroup size fails naming it. Pipelines are compiled once per (file,
 * entry point, constants) and cached. Nothing is submitted until `flush()` or a read, so a
 * whole training step is one queue submit.
 *
 * @module
 */
import { type GradientObserver, Tape } from "./autograd.ts";
import { type Gpu, type GpuInfo, requestGpu } from "./device.ts";
import { BufferPool, roundBytes } from "./pool.ts";
import { type Shape, showShape, sizeOf, Tensor } from "./tensor.ts";
import {
  expandIncludes,
  type KernelInterface,
  orderBindings,
  parseKernelInterface,
  resolveWorkgroupSize,
} from "./kernel_source.ts";

/** One kernel launch: the tfjs-style "program object". */
export interface Program {
  /** File name under `kernels/`, e.g. "conv2d_forward.wgsl". */
  kernel: string;
  /** Entry point; defaults to "main". */
  entryPoint?: string;
  /** Values for the kernel's `override` constants (shapes, strides, tile sizes). */
  constants?: Record<string, number>;
  /** Workgroup counts in x, y, z. */
  dispatch: readonly number[];
  /**
   * The workgroup size `dispatch` was computed for (default `[WG]`). The engine sets a
   * kernel's `override WG` to it and refuses a kernel whose `@workgroup_size` differs.
   */
  workgroupSize?: readonly number[];
}

/** A program's buffers by the names of the kernel's `@binding` declarations. */
export type Bindings = Readonly<Record<string, Tensor | GPUBuffer>>;

/** Reads a kernel's WGSL source by file name. */
export type KernelLoader = (file: string) => string;

/** Reads kernels from the `kernels/` folder next to `src/` (Deno). */
export function readKernelFile(file: string): string {
  return Deno.readTextFileSync(new URL(`../../kernels/${file}`, import.meta.url));
}

/**
 * Which convolution kernels run: the register-tiled "rows" kernels that CPU adapters such as
 * lavapipe reward, or the generic one-invocation-per-output kernels (see `ops/conv2d.ts`).
 * `auto` picks "rows" on a CPU-backed adapter and "generic" on a GPU. Every choice computes
 * the same convolution; the tests run each one on every machine.
 */
export type KernelPolicy = "auto" | "rows" | "generic";

/** The policies, for command-line checks. */
export const KERNEL_POLICIES: readonly KernelPolicy[] = ["auto", "rows", "generic"];

/** Options of {@link Engine.create}. */
export interface EngineOptions {
  /** Fill every new output with NaN first, so an element a kernel forgets to write shows. */
  fillOutputsWithNaN?: boolean;
  /** Where kernel sources come from (default: files under `kernels/`). */
  loadKernel?: KernelLoader;
  /** Use this device instead of requesting one. */
  gpu?: Gpu;
  /** Which convolution kernels run (default "auto"). */
  kernels?: KernelPolicy;
}

/** Default workgroup size of one-dimensional kernels. */
export const WG = 64;

/**
 * Workgroup counts for `count` invocations in groups of `workgroupSize`, folded into a
 * second dimension above the 65,535 limit. Kernels recover the index as
 * `gid.x + gid.y * num_workgroups.x * WG`.
 */
export function grid(count: number, workgroupSize = WG): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / workgroupSize));
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

const NAN_BITS = 0x7fc00000;

/** Runs kernels and owns buffers, scopes and the tape. See the module doc. */
export class Engine {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** Adapter description and limits. */
  readonly info: GpuInfo;
  /** The convolution kernels this engine runs: its {@link KernelPolicy}, `auto` resolved. */
  readonly kernels: "rows" | "generic";
  /** Storage buffers, reused by size. */
  readonly pool: BufferPool;
  /** Autograd tape. */
  readonly tape = new Tape();
  /** See {@link EngineOptions.fillOutputsWithNaN}. */
  fillOutputsWithNaN: boolean;
  /** Counters: kernel dispatches recorded, queue submits made, compute pipelines compiled. */
  readonly stats = { dispatches: 0, submits: 0, pipelines: 0 };
  /** Set by `startProfile`: every dispatch gets its own timed pass. */
  #profile: { querySet: GPUQuerySet; programs: Program[]; capacity: number } | null = null;

  /**
   * Called with every program as it is recorded (the tour lists the step's kernels with
   * it). Unset, it costs one property check per dispatch.
   */
  onDispatch: ((program: Program) => void) | null = null;

  #loadKernel: KernelLoader;
  #kernels = new Map<
    string,
    { module: GPUShaderModule; face: KernelInterface; layout: GPUBindGroupLayout }
  >();
  #pipelines = new Map<string, GPUComputePipeline>();
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  /** Buffers bound by commands recorded since the last submit. */
  #pending = new Set<GPUBuffer>();
  #staging = new Map<number, GPUBuffer[]>();
  #scopes: Set<Tensor>[] = [];
  #failure: string | null = null;
  /** Rejections of the waits in flight, for the device-lost handler. */
  #lostWaiters = new Set<(err: Error) => void>();

  private constructor(gpu: Gpu, options: EngineOptions) {
    this.device = gpu.device;
    this.info = gpu.info;
    const policy = options.kernels ?? "auto";
    if (!KERNEL_POLICIES.includes(policy)) {
      throw new Error(
        `unknown kernel policy "${policy}": choose one of ${KERNEL_POLICIES.join(", ")}`,
      );
    }
    this.kernels = policy === "auto" ? (gpu.info.isFallback ? "rows" : "generic") : policy;
    this.pool = new BufferPool(this.device);
    this.fillOutputsWithNaN = options.fillOutputsWithNaN ?? false;
    this.#loadKernel = options.loadKernel ?? readKernelFile;
    // One handler for the device's whole life (a handler per read would pile up on a
    // promise that never settles): it fails every wait still in flight.
    this.device.lost.then((info) => {
      this.#failure ??= `GPU device lost (${info.reason}): ${info.message}`;
      const err = new Error(`GPU device lost (${info.reason}): ${info.message}`);
      for (const reject of this.#lostWaiters) reject(err);
      this.#lostWaiters.clear();
    });
    this.device.addEventListener("uncapturederror", (event) => {
      this.#failure ??= `WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`;
    });
  }

  /** Acquires a device (see `requestGpu`) and builds an engine on it. */
  static async create(options: EngineOptions = {}): Promise<Engine> {
    return new Engine(options.gpu ?? await requestGpu(), options);
  }

  /** Throws if the device was lost or a kernel raised a WebGPU error. */
  checkHealthy(): void {
    if (this.#failure) throw new Error(this.#failure);
  }

  // ---- kernels -------------------------------------------------------------------------

  /** A kernel's module, interface and bind-group layout, built once. */
  #kernel(file: string) {
    let kernel = this.#kernels.get(file);
    if (!kernel) {
      const code = expandIncludes(file, this.#loadKernel(file), this.#loadKernel);
      const face = parseKernelInterface(file, code);
      const layout = this.device.createBindGroupLayout({
        label: file,
        entries: face.bindings.map((b, binding) => ({
          binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
        })),
      });
      kernel = { module: this.device.createShaderModule({ label: file, code }), face, layout };
      this.#kernels.set(file, kernel);
    }
    return kernel;
  }

  /** The program's `override` constants, `WG` included when the kernel declares it. */
  #constants(program: Program, face: KernelInterface): Record<string, number> {
    const constants = program.constants ?? {};
    if (!face.overridesWG) return constants;
    if ("WG" in constants) {
      throw new Error(`${program.kernel}: WG is set by the engine from program.workgroupSize`);
    }
    return { ...constants, WG: (program.workgroupSize ?? [WG])[0] };
  }

  /** The kernel's `@workgroup_size` for this program, `override` names resolved. */
  workgroupSize(program: Program): [number, number, number] {
    const { face } = this.#kernel(program.kernel);
    return resolveWorkgroupSize(face, program.entryPoint ?? "main", this.#constants(program, face));
  }

  /** The cached compute pipeline for a program. */
  pipeline(program: Program): GPUComputePipeline {
    const entryPoint = program.entryPoint ?? "main";
    const key = `${program.kernel}:${entryPoint}:${JSON.stringify(program.constants ?? {})}:${
      program.workgroupSize ?? ""
    }`;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      const { module, face, layout } = this.#kernel(program.kernel);
      const constants = this.#constants(program, face);
      const size = resolveWorkgroupSize(face, entryPoint, constants);
      const [x = WG, y = 1, z = 1] = program.workgroupSize ?? [];
      if (size[0] !== x || size[1] !== y || size[2] !== z) {
        throw new Error(
          `${program.kernel}: @workgroup_size is (${size}) but the program dispatches for ` +
            `(${[x, y, z]})`,
        );
      }
      pipeline = this.device.createComputePipeline({
        label: key,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint, constants },
      });
      this.stats.pipelines++;
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /**
   * Records one dispatch of `program` with its buffers named as the kernel's bindings are
   * (a missing or unknown name throws, naming it). Nothing runs until the next `flush()`
   * (or read).
   */
  run(program: Program, bindings: Bindings): void {
    this.checkHealthy();
    const pipeline = this.pipeline(program);
    const { face, layout } = this.#kernel(program.kernel);
    const entries = orderBindings(face, bindings).map((b, binding) => {
      const buffer = b instanceof Tensor ? b.buffer : b;
      this.#pending.add(buffer);
      return { binding, resource: { buffer } };
    });
    const bindGroup = this.device.createBindGroup({ layout, entries });
    this.onDispatch?.(program);
    const pass = this.#profile ? this.#timedPass() : this.#computePass();
    this.#profile?.programs.push(program);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = program.dispatch;
    pass.dispatchWorkgroups(x, y, z);
    if (this.#profile) {
      pass.end();
      this.#pass = null;
    }
    this.stats.dispatches++;
  }

  /** A compute pass that writes GPU timestamps at its start and end (profiling). */
  #timedPass(): GPUComputePassEncoder {
    const profile = this.#profile!;
    const k = profile.programs.length;
    if (k >= profile.capacity) throw new Error(`profile: more than ${profile.capacity} dispatches`);
    const encoder = this.#commandEncoder();
    this.#pass = encoder.beginComputePass({
      timestampWrites: {
        querySet: profile.querySet,
        beginningOfPassWriteIndex: 2 * k,
        endOfPassWriteIndex: 2 * k + 1,
      },
    });
    return this.#pass;
  }

  /**
   * Times every dispatch recorded until `stopProfile` on the GPU's clock (each in its own
   * pass, so this is slower than normal recording). Needs the timestamp-query feature.
   * `capacity` is at most 2048 dispatches (a query set holds at most 4096 timestamps).
   */
  startProfile(capacity = 2048): void {
    if (!this.device.features.has("timestamp-query")) {
      throw new Error(`profile: the adapter "${this.info.description}" has no timestamp-query`);
    }
    this.flush();
    this.#profile = {
      querySet: this.device.createQuerySet({ type: "timestamp", count: 2 * capacity }),
      programs: [],
      capacity,
    };
  }

  /** Ends profiling; returns each dispatch's program and GPU time in milliseconds. */
  async stopProfile(): Promise<{ program: Program; ms: number }[]> {
    const profile = this.#profile;
    if (!profile) throw new Error("stopProfile: no profile was started");
    this.#profile = null;
    const count = 2 * profile.programs.length;
    const programs = profile.programs;
    if (count === 0) return [];
    const resolved = this.device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
    const staging = this.device.createBuffer({
      size: count * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const encoder = this.#commandEncoder();
    encoder.resolveQuerySet(profile.querySet, 0, count, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, count * 8);
    this.flush();
    await this.#orLost(staging.mapAsync(GPUMapMode.READ));
    this.checkHealthy();
    const ticks = new BigUint64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    [staging, resolved].forEach((b) => b.destroy());
    profile.querySet.destroy();
    return programs.map((program, k) => ({
      program,
      ms: Number(ticks[2 * k + 1] - ticks[2 * k]) / 1e6,
    }));
  }

  #computePass(): GPUComputePassEncoder {
    this.#encoder ??= this.device.createCommandEncoder();
    this.#pass ??= this.#encoder.beginComputePass();
    return this.#pass;
  }

  #commandEncoder(): GPUCommandEncoder {
    this.#pass?.end();
    this.#pass = null;
    this.#encoder ??= this.device.createCommandEncoder();
    return this.#encoder;
  }

  /** Submits everything recorded so far as one command buffer (no-op when nothing is). */
  flush(): void {
    this.checkHealthy();
    if (!this.#encoder) return;
    const encoder = this.#commandEncoder();
    this.#encoder = null;
    this.device.queue.submit([encoder.finish()]);
    this.#pending.clear();
    this.stats.submits++;
  }

  /** Resolves when the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.#orLost(this.device.queue.onSubmittedWorkDone());
    this.checkHealthy();
  }

  /** `work`, or a rejection as soon as the device is lost. */
  #orLost<T>(work: Promise<T>): Promise<T> {
    if (this.#failure) return Promise.reject(new Error(this.#failure));
    return new Promise<T>((resolve, reject) => {
      this.#lostWaiters.add(reject);
      work.then(resolve, reject).finally(() => this.#lostWaiters.delete(reject));
    });
  }

  // ---- tensors -------------------------------------------------------------------------

  /** A new tensor with unspecified contents (NaN when `fillOutputsWithNaN`). */
  empty(shape: Shape, name?: string): Tensor {
    const t = new Tensor(this, shape, this.pool.acquire(sizeOf(shape) * 4), name);
    this.#track(t);
    if (this.fillOutputsWithNaN) this.fillBits(t, NAN_BITS);
    return t;
  }

  /** A new tensor with every element equal to `value`. */
  full(shape: Shape, value: number, name?: string): Tensor {
    const t = new Tensor(this, shape, this.pool.acquire(sizeOf(shape) * 4), name);
    this.#track(t);
    this.fillBits(t, new Uint32Array(new Float32Array([value]).buffer)[0]);
    return t;
  }

  /** Records a kernel that sets every 32-bit word of `t` (padding included) to `bits`. */
  fillBits(t: Tensor, bits: number): void {
    const words = t.buffer.size / 4;
    this.run({ kernel: "fill.wgsl", constants: { N: words, BITS: bits }, dispatch: grid(words) }, {
      y: t,
    });
  }

  /** A new tensor holding `data` (length must equal the shape's size). */
  tensor(data: ArrayLike<number>, shape: Shape, name?: string): Tensor {
    if (data.length !== sizeOf(shape)) {
      throw new Error(
        `tensor${name ? ` ${name}` : ""}: ${data.length} values do not fill shape ${
          showShape(shape)
        } (${sizeOf(shape)} elements)`,
      );
    }
    const t = new Tensor(this, shape, this.pool.acquire(sizeOf(shape) * 4), name);
    this.#track(t);
    this.write(t, data);
    return t;
  }

  /**
   * Overwrites `t` with `data`. queue.writeBuffer runs before any command still being
   * recorded, so if those commands use this buffer we submit them first.
   */
  write(t: Tensor, data: ArrayLike<number>): void {
    if (data.length !== t.size) {
      throw new Error(`write: ${data.length} values for tensor ${showShape(t.shape)}`);
    }
    if (this.#pending.has(t.buffer)) this.flush();
    const array = data instanceof Float32Array ? data : Float32Array.from(data);
    this.device.queue.writeBuffer(t.buffer, 0, array as Float32Array<ArrayBuffer>);
  }

  /** Reads a tensor back to the CPU (submits pending work, waits for the GPU). */
  async read(t: Tensor): Promise<Float32Array> {
    const bytes = roundBytes(t.size * 4);
    const staging = this.#staging.get(bytes)?.pop() ??
      this.device.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    this.#commandEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, bytes);
    this.flush();
    try {
      await this.#orLost(staging.mapAsync(GPUMapMode.READ));
    } catch (err) {
      // A destroyed device fails the map with a bare validation error; give `lost` a moment
      // to resolve so the message says what actually happened.
      await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, 100))]);
      this.checkHealthy();
      throw new Error(`reading a tensor back failed: ${(err as Error).message}`);
    }
    this.checkHealthy();
    const out = new Float32Array(staging.getMappedRange().slice(0, t.size * 4));
    staging.unmap();
    const list = this.#staging.get(bytes);
    if (list) list.push(staging);
    else this.#staging.set(bytes, [staging]);
    return out;
  }

  /** Called by `Tensor.dispose`. */
  releaseBuffer(buffer: GPUBuffer): void {
    this.pool.release(buffer);
  }

  // ---- scopes --------------------------------------------------------------------------

  #track(t: Tensor): void {
    this.#scopes.at(-1)?.add(t);
  }

  /**
   * Runs `fn` and disposes every tensor created inside it, except the tensors it returns
   * (a tensor, or an array or object of tensors), which move to the enclosing scope.
   */
  tidy<T>(fn: () => T): T {
    const scope = new Set<Tensor>();
    this.#scopes.push(scope);
    let result: T;
    try {
      result = fn();
    } finally {
      this.#scopes.pop();
    }
    const kept = new Set<Tensor>();
    const collect = (v: unknown) => {
      if (v instanceof Tensor) kept.add(v);
      else if (Array.isArray(v)) v.forEach(collect);
      else if (v instanceof Map) v.forEach(collect);
      else if (v && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
        Object.values(v).forEach(collect);
      }
    };
    collect(result);
    for (const t of scope) {
      if (kept.has(t)) this.#track(t);
      else t.dispose();
    }
    this.tape.prune();
    return result;
  }

  /** Removes `t` from the current scope so `tidy` will not dispose it (e.g. parameters). */
  keep<T extends Tensor>(t: T): T {
    for (const scope of this.#scopes) scope.delete(t);
    return t;
  }

  // ---- autograd ------------------------------------------------------------------------

  /**
   * Gradients of `loss` (summed over its elements) with respect to each of `wrt`; clears the
   * tape. With `seed`, the gradient flowing into `loss` (its shape) instead of ones: the
   * vector-Jacobian product, which is how an op's backward is tested on its own. `observe`
   * sees every entry's backward as it is recorded (see `Tape.gradients`).
   */
  gradients(
    loss: Tensor,
    wrt: readonly Tensor[],
    seed?: Tensor,
    observe?: GradientObserver,
  ): Map<Tensor, Tensor> {
    if (!loss.requiresGrad) {
      throw new Error("gradients: the loss does not depend on any tensor that requires a gradient");
    }
    if (seed && seed.size !== loss.size) {
      throw new Error(
        `gradients: the seed ${showShape(seed.shape)} does not match the loss ${
          showShape(loss.shape)
        }`,
      );
    }
    return this.tape.gradients(
      loss,
      wrt,
      seed ?? this.full(loss.shape, 1),
      (a, b) => this.add(a, b),
      observe,
    );
  }

  /** Runs `fn` without recording ops on the tape (inference). */
  noGrad<T>(fn: () => T): T {
    return this.tape.withoutRecording(fn);
  }

  /** Elementwise sum of two same-shape tensors (used to accumulate gradients). */
  add(a: Tensor, b: Tensor): Tensor {
    if (a.size !== b.size) {
      throw new Error(`add: shapes differ, a ${showShape(a.shape)} vs b ${showShape(b.shape)}`);
    }
    const y = this.empty(a.shape);
    const n4 = Math.ceil(a.size / 4);
    this.run({ kernel: "add.wgsl", constants: { N4: n4 }, dispatch: grid(n4) }, { a, b, y });
    return y;
  }

  /** Destroys pooled and staging buffers; the engine must not be used afterwards. */
  destroy(): void {
    this.pool.trim();
    for (const list of this.#staging.values()) list.forEach((b) => b.destroy());
    this.#staging.clear();
    this.device.destroy();
  }
}
