// batchnorm2d_forward.wgsl: y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c], with the batch
// statistics in training and the running ones in evaluation (invstd = 1 / sqrt(var + eps)).
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. Per-channel
// [C] tensors are read through include/per_channel.wgsl.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> mean: array<vec4f>;
@group(0) @binding(2) var<storage, read> invstd: array<vec4f>;
@group(0) @binding(3) var<storage, read> gamma: array<vec4f>;
@group(0) @binding(4) var<storage, read> beta: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4f>;

#include "per_channel.wgsl" for mean, invstd, gamma, beta

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  y[i] = (x[i] - meanAt(i)) * (invstdAt(i) * gammaAt(i)) + betaAt(i);
}
