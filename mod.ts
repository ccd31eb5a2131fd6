/**
 * Bone-age on a hand-written WebGPU engine: the public API.
 *
 * @module
 */
export * from "./src/device.ts";
export * from "./src/engine.ts";
export * from "./src/tensor.ts";
export * from "./src/pool.ts";
export * from "./src/autograd.ts";
export * from "./src/ops/relu.ts";
export { sumMiddle } from "./src/ops/reduce.ts";
