// adam.wgsl: one Adam/AdamW update of a parameter tensor, elementwise:
//   m = BETA1 m + (1 - BETA1) g;  v = BETA2 v + (1 - BETA2) g^2
//   p = p * decay - stepSize * m / (sqrt(v) * invSqrtBc2 + EPS)
// with the per-step values read from params = [stepSize = lr / (1 - beta1^t),
// invSqrtBc2 = 1 / sqrt(1 - beta2^t), decay = 1 - lr * weightDecay, unused]. They live in a
// buffer rather than in override constants so that changing lr or t reuses the pipeline.
// This is PyTorch's formulation (decoupled weight decay applied before the Adam step).
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override BETA1: f32;
override BETA2: f32;
override EPS: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> params: array<vec4f>;
@group(0) @binding(1) var<storage, read> grad: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> p: array<vec4f>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let s = params[0];
  let g = grad[i];
  let mi = BETA1 * m[i] + (1.0 - BETA1) * g;
  let vi = BETA2 * v[i] + (1.0 - BETA2) * g * g;
  m[i] = mi;
  v[i] = vi;
  p[i] = p[i] * s.z - s.x * mi / (sqrt(vi) * s.y + EPS);
}
