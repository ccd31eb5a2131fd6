// add.wgsl: y = a + b, elementwise.
// Index math: one invocation per 4 elements (vec4); i = gid.x + gid.y * num_workgroups.x * WG
// over N4 = ceil(size / 4). Pool buffers are padded to 16 bytes, so the last vec4 is in bounds.

override N4: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> a: array<vec4f>;
@group(0) @binding(1) var<storage, read> b: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  y[i] = a[i] + b[i];
}
