// dropout.wgsl: y = x * keep(i) * SCALE with keep(i) = hash(i ^ hash(seed ^ 0x9e3779b9)) >= THRESH,
// THRESH = round(p * 2^32), SCALE = 1 / (1 - p). The same kernel is the backward
// (dx = dy * keep * SCALE): the mask is recomputed from the seed, so no mask buffer is kept.
// The seed is read from params[0] (its u32 bits), not an override, so a new seed every step
// reuses the pipeline. hash = lowbias32 (Chris Wellons), an invertible 32-bit integer mix.
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4;
// element index of lane l is 4i + l (the padding lanes of the last vec4 are computed too).

override N4: u32;
override THRESH: u32;
override SCALE: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> params: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<vec4f>;

fn hash(v: vec4u) -> vec4u {
  var h = v;
  h ^= h >> vec4u(16u);
  h *= 0x7feb352du;
  h ^= h >> vec4u(15u);
  h *= 0x846ca68bu;
  h ^= h >> vec4u(16u);
  return h;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  let key = hash(vec4u(params[0] ^ 0x9e3779b9u)).x;
  let h = hash((vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u)) ^ vec4u(key));
  y[i] = select(vec4f(0.0), x[i] * SCALE, h >= vec4u(THRESH));
}
