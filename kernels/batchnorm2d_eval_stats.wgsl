// batchnorm2d_eval_stats.wgsl: per channel c, the statistics evaluation mode normalizes with:
//   mean[c] = runMean[c],  invstd[c] = 1 / sqrt(runVar[c] + EPS).
// The mean is copied so that the backward pass sees the statistics of its forward pass even
// if a later training step updates the running ones in place.
// Index math: one invocation per channel, c = gid.x + gid.y * num_workgroups.x * WG, c < C.

override C: u32;
override EPS: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> runMean: array<f32>;
@group(0) @binding(1) var<storage, read> runVar: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> invstd: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = gid.x + gid.y * nwg.x * WG;
  if (c >= C) { return; }
  mean[c] = runMean[c];
  invstd[c] = 1.0 / sqrt(runVar[c] + EPS);
}
