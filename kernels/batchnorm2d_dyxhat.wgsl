// batchnorm2d_dyxhat.wgsl: p = dy * xhat with xhat = (x - mean[c]) * invstd[c], which
// sumMiddle turns into dgamma = sum over rows of dy * xhat.
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. Per-channel
// [C] tensors are read through include/per_channel.wgsl.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> mean: array<vec4f>;
@group(0) @binding(3) var<storage, read> invstd: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> p: array<vec4f>;

#include "per_channel.wgsl" for mean, invstd

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  p[i] = dy[i] * (x[i] - meanAt(i)) * invstdAt(i);
}
