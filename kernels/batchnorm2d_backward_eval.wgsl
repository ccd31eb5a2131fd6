// batchnorm2d_backward_eval.wgsl: input gradient of evaluation-mode batch norm. The running
// statistics are constants there, so it is a per-channel scale:
//   dx = gamma[c] * invstd[c] * dy.
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. Per-channel
// [C] tensors are read through include/per_channel.wgsl.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<vec4f>;
@group(0) @binding(1) var<storage, read> invstd: array<vec4f>;
@group(0) @binding(2) var<storage, read> gamma: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> dx: array<vec4f>;

#include "per_channel.wgsl" for invstd, gamma

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  dx[i] = gammaAt(i) * invstdAt(i) * dy[i];
}
