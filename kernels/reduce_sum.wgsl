// reduce_sum.wgsl: partial sums over the middle axis of x[B, R, C]:
//   y[b, s, c] = SCALE * sum_{r in chunk s} x[b, r, c],  chunk s = [s*CHUNK, min(R, (s+1)*CHUNK))
// with S = ceil(R / CHUNK) chunks. The host repeats the pass on y (R := S) until S = 1, so a
// long axis (N*H*W rows of a batch) is summed in parallel instead of by one invocation.
// Index math: one invocation per output, i = (b*S + s)*C + c with c fastest, so neighbouring
// invocations read neighbouring addresses.

override B: u32;
override R: u32;
override C: u32;
override CHUNK: u32;
override SCALE: f32 = 1.0;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let S = (R + CHUNK - 1u) / CHUNK;
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= B * S * C) { return; }
  let c = i % C;
  let s = (i / C) % S;
  let b = i / (C * S);
  let r0 = s * CHUNK;
  let r1 = min(R, r0 + CHUNK);
  var acc = 0.0;
  for (var r = r0; r < r1; r++) {
    acc += x[(b * R + r) * C + c];
  }
  y[i] = acc * SCALE;
}
