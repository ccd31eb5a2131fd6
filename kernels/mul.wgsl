// mul.wgsl: y = a * b, elementwise (also the backward of mul: da = dy * b, db = dy * a).
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  y[i] = a[i] * b[i];
}
