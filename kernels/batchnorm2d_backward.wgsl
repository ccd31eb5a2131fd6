// batchnorm2d_backward.wgsl: input gradient of training-mode batch norm. The batch mean and
// variance depend on every x of the channel, which adds two terms to the plain dy:
//   dx = gamma[c] * invstd[c] * (dy - sumDy[c] / M - xhat * sumDyXhat[c] / M),
//   xhat = (x - mean[c]) * invstd[c],  INV_M = 1 / M,
// where sumDy = sum over rows of dy and sumDyXhat = sum of dy * xhat (sumMiddle outputs).
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. Per-channel
// [C] tensors are read through include/per_channel.wgsl.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override INV_M: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> mean: array<vec4f>;
@group(0) @binding(3) var<storage, read> invstd: array<vec4f>;
@group(0) @binding(4) var<storage, read> gamma: array<vec4f>;
@group(0) @binding(5) var<storage, read> sumDy: array<vec4f>;
@group(0) @binding(6) var<storage, read> sumDyXhat: array<vec4f>;
@group(0) @binding(7) var<storage, read_write> dx: array<vec4f>;

#include "per_channel.wgsl" for mean, invstd, gamma, sumDy, sumDyXhat

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let s = invstdAt(i);
  let xhat = (x[i] - meanAt(i)) * s;
  dx[i] = gammaAt(i) * s * (dy[i] - (sumDyAt(i) + xhat * sumDyXhatAt(i)) * INV_M);
}
