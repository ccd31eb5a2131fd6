// batchnorm2d_sqdev.wgsl: squared deviations from the channel mean, sq = (x - mean[c])^2,
// which sumMiddle then averages into the biased batch variance (two passes, so no
// E[x^2] - E[x]^2 cancellation).
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. Per-channel
// [C] tensors are read through include/per_channel.wgsl.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> mean: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> sq: array<vec4f>;

#include "per_channel.wgsl" for mean

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let d = x[i] - meanAt(i);
  sq[i] = d * d;
}
