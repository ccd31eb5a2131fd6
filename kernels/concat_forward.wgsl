// concat_forward.wgsl: y[n, j] = a[n, j] for j < A, else b[n, j - A]; y is [N, A + B].
// Index math: one invocation per vec4 of y, i = gid.x + gid.y * num_workgroups.x * WG,
// i < ceil(N * (A + B) / 4); element e = 4i + l has n = e / (A + B), j = e % (A + B). The four
// elements may straddle a row or the a/b seam, so a and b are read as scalars.

override N: u32;
override A: u32;
override B: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;

fn element(e: u32) -> f32 {
  let T = A + B;
  if (e >= N * T) { return 0.0; }
  let n = e / T;
  let j = e % T;
  if (j < A) { return a[n * A + j]; }
  return b[n * B + (j - A)];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= (N * (A + B) + 3u) / 4u) { return; }
  let e = 4u * i;
  y[i] = vec4f(element(e), element(e + 1u), element(e + 2u), element(e + 3u));
}
