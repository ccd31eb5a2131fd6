/**
 * Acquiring the WebGPU adapter and device.
 *
 * Deno grants only the spec's default limits unless asked, so we request every limit the
 * adapter offers. A lost device or an uncaptured validation error is remembered and raised
 * by the next call into the engine, so a broken GPU never turns into a silent hang.
 *
 * @module
 */

/** What we got from the adapter: shown by tasks and recorded next to benchmark numbers. */
export interface GpuInfo {
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  description: string;
  /** Vendor string or id as the driver reports it. */
  vendor: string;
  /** Architecture string (often empty on software adapters). */
  architecture: string;
  /** True for a CPU-backed adapter such as Mesa's lavapipe or SwiftShader. */
  isFallback: boolean;
  /** The limits granted to our device (all the adapter offers). */
  limits: Record<string, number>;
  /** Optional features the adapter supports, e.g. "shader-f16". */
  features: string[];
}

/** A device with its description. */
export interface Gpu {
  /** The WebGPU device every kernel runs on. */
  device: GPUDevice;
  /** What the adapter is and what it granted. */
  info: GpuInfo;
}

/** The error text shown when no adapter exists: it names the fix. */
export const NO_ADAPTER_HELP = "No WebGPU adapter found. Install a GPU driver, or on a machine " +
  "without a GPU install Mesa's software Vulkan driver: `sudo apt-get install -y " +
  "mesa-vulkan-drivers` (Debian/Ubuntu), then run again.";

const LIMIT_NAMES = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupStorageSize",
  "maxComputeWorkgroupsPerDimension",
  "maxBindGroups",
  "minStorageBufferOffsetAlignment",
] as const;

/**
 * On a Linux machine without a desktop session (a server, CI, a container) XDG_RUNTIME_DIR
 * is unset, and the Vulkan drivers' probe for a Wayland display makes libwayland print
 * "error: XDG_RUNTIME_DIR is invalid or not set" twice: harmless, but the first thing a new
 * user reads. A compute-only engine needs no display, so name the standard per-user runtime
 * folder's parent, where no Wayland socket lies, and the probe fails quietly. Nothing is
 * created there; an environment that sets the variable keeps its own.
 */
function quietWaylandProbe(): void {
  const deno = (globalThis as { Deno?: typeof Deno }).Deno;
  if (deno?.build.os !== "linux") return;
  try {
    if (!deno.env.get("XDG_RUNTIME_DIR")) deno.env.set("XDG_RUNTIME_DIR", "/run/user");
  } catch { /* no permission for this variable: the warning stays, nothing else changes */ }
}

/**
 * Requests the adapter and a device with all of the adapter's limits (and shader-f16 when
 * offered). Throws {@link NO_ADAPTER_HELP} when the system has no WebGPU adapter.
 */
export async function requestGpu(
  options: { powerPreference?: GPUPowerPreference } = {},
): Promise<Gpu> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new Error("This runtime has no WebGPU (navigator.gpu is missing). " + NO_ADAPTER_HELP);
  }
  quietWaylandProbe();
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const value = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof value === "number") requiredLimits[name] = value;
  }
  // timestamp-query lets the profiler time each kernel on the GPU's own clock.
  const requiredFeatures = (["shader-f16", "timestamp-query"] as GPUFeatureName[])
    .filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const adapterInfo = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const info: GpuInfo = {
    description: adapterInfo.description || adapterInfo.device || "unknown adapter",
    vendor: adapterInfo.vendor,
    architecture: adapterInfo.architecture,
    isFallback: Boolean(
      adapterInfo.isFallbackAdapter ??
        (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter,
    ) || /llvmpipe|lavapipe|swiftshader/i.test(adapterInfo.description ?? ""),
    limits: requiredLimits,
    features: [...adapter.features].map(String),
  };
  return { device, info };
}
