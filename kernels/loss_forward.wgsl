// loss_forward.wgsl: per-element loss of d = pred - target, summed afterwards by sumMiddle:
//   KIND 0 (L1): |d|;  KIND 1 (MSE): d^2;
//   KIND 2 (Huber): 0.5 d^2 if |d| <= DELTA, else DELTA * (|d| - 0.5 DELTA).
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override KIND: u32;
override DELTA: f32 = 1.0;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> pred: array<vec4f>;
// (`target` is a reserved word in WGSL.)
@group(0) @binding(1) var<storage, read> tgt: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let d = pred[i] - tgt[i];
  let a = abs(d);
  switch KIND {
    case 0u: { y[i] = a; }
    case 1u: { y[i] = d * d; }
    default: { y[i] = select(DELTA * (a - 0.5 * DELTA), 0.5 * d * d, a <= vec4f(DELTA)); }
  }
}
