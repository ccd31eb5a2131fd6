// reduce_sum_vec4.wgsl: reduce_sum.wgsl for C % 4 == 0, four channels per invocation.
//   y[b, s, c4] = SCALE * sum_{r in chunk s} x[b, r, c4]   (c4 indexes vec4s of channels)
// with S = ceil(R / CHUNK); the host repeats the pass until S = 1.
// Index math: one invocation per output vec4, i = (b*S + s)*C4 + c4, c4 fastest.

override B: u32;
override R: u32;
override C4: u32;
override CHUNK: u32;
override SCALE: f32 = 1.0;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let S = (R + CHUNK - 1u) / CHUNK;
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= B * S * C4) { return; }
  let c4 = i % C4;
  let s = (i / C4) % S;
  let b = i / (C4 * S);
  let r0 = s * CHUNK;
  let r1 = min(R, r0 + CHUNK);
  var acc = vec4f(0.0);
  for (var r = r0; r < r1; r++) {
    acc += x[(b * R + r) * C4 + c4];
  }
  y[i] = acc * SCALE;
}
