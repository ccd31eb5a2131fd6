// batchnorm2d_train_stats.wgsl: per channel c, after the batch statistics are known:
//   invstd[c] = 1 / sqrt(var[c] + EPS)                  (var: biased batch variance)
//   runMean[c] = (1 - MOMENTUM) * runMean[c] + MOMENTUM * mean[c]
//   runVar[c]  = (1 - MOMENTUM) * runVar[c]  + MOMENTUM * var[c] * UNBIAS
// updating the running statistics in place. UNBIAS = M / (M - 1) turns the biased variance
// into the unbiased one, as PyTorch does for the running estimate.
// Index math: one invocation per channel, c = gid.x + gid.y * num_workgroups.x * WG, c < C.

override C: u32;
override EPS: f32;
override MOMENTUM: f32;
override UNBIAS: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> mean: array<f32>;
@group(0) @binding(1) var<storage, read> variance: array<f32>;
@group(0) @binding(2) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> runMean: array<f32>;
@group(0) @binding(4) var<storage, read_write> runVar: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= C) { return; }
  // 1 / sqrt rather than inverseSqrt: exact rounding is worth it for C values.
  invstd[c] = 1.0 / sqrt(variance[c] + EPS);
  runMean[c] = (1.0 - MOMENTUM) * runMean[c] + MOMENTUM * mean[c];
  runVar[c] = (1.0 - MOMENTUM) * runVar[c] + MOMENTUM * (variance[c] * UNBIAS);
}
