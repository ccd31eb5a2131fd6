// loss_backward.wgsl: gradient of mean(loss(pred - target)) times the incoming dLoss:
//   g = dLoss[0] * SIGN * INV_N * l'(d), d = pred - target, with l'(d) =
//   KIND 0 (L1): sign(d) (0 at d = 0); KIND 1 (MSE): 2d; KIND 2 (Huber): clamp(d, -DELTA, DELTA).
// SIGN = 1 gives d/dpred, SIGN = -1 gives d/dtarget. dLoss is read here, on the GPU, so the
// backward never waits for a read-back.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override KIND: u32;
override DELTA: f32 = 1.0;
override INV_N: f32;
override SIGN: f32 = 1.0;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dloss: array<f32>;
@group(0) @binding(1) var<storage, read> pred: array<vec4f>;
// (`target` is a reserved word in WGSL.)
@group(0) @binding(2) var<storage, read> tgt: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> grad: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let d = pred[i] - tgt[i];
  var g: vec4f;
  switch KIND {
    case 0u: { g = sign(d); }
    case 1u: { g = 2.0 * d; }
    default: { g = clamp(d, vec4f(-DELTA), vec4f(DELTA)); }
  }
  grad[i] = (dloss[0] * SIGN * INV_N) * g;
}
