// elu_forward.wgsl: y = x if x > 0, else ALPHA * (exp(x) - 1), elementwise.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override ALPHA: f32 = 1.0;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let v = x[i];
  // min() keeps exp from overflowing on the positive lanes that select() discards anyway.
  y[i] = select(ALPHA * (exp(min(v, vec4f(0.0))) - 1.0), v, v > vec4f(0.0));
}
