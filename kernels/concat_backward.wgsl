// concat_backward.wgsl: one half of the gradient of concatFeatures,
// dx[n, j] = dy[n, OFF + j] for dx [N, W] and dy [N, T] (OFF = 0, W = A for a; OFF = A, W = B for b).
// Index math: one invocation per vec4 of dx, i = gid.x + gid.y * num_workgroups.x * WG,
// i < ceil(N * W / 4); element e = 4i + l has n = e / W, j = e % W. dy is read as scalars
// because a vec4 of dx may straddle rows.

override N: u32;
override T: u32;
override OFF: u32;
override W: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<vec4f>;

fn element(e: u32) -> f32 {
  if (e >= N * W) { return 0.0; }
  return dy[(e / W) * T + OFF + e % W];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= (N * W + 3u) / 4u) { return; }
  let e = 4u * i;
  dx[i] = vec4f(element(e), element(e + 1u), element(e + 2u), element(e + 3u));
}
