// avgpool2d_forward_vec4.wgsl: avgpool2d_forward.wgsl for C % 4 == 0, four channels per
// invocation. With C4 = C / 4:
//   y4[n, oh, ow, c4] = mean_{kh, kw < K} x4[n, oh*S + kh, ow*S + kw, c4].
// Index math: one invocation per output vec4, i = ((n*OH + oh)*OW + ow)*C4 + c4,
// i = gid.x + gid.y * num_workgroups.x * WG, i < N*OH*OW*C4.

override N: u32;
override H: u32;
override W: u32;
override C4: u32;
override OH: u32;
override OW: u32;
override K: u32;
override S: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * OH * OW * C4) { return; }
  let c4 = i % C4;
  let ow = (i / C4) % OW;
  let oh = (i / (C4 * OW)) % OH;
  let n = i / (C4 * OW * OH);
  let base = ((n * H + oh * S) * W + ow * S) * C4 + c4;
  var acc = vec4f(0.0);
  for (var kh = 0u; kh < K; kh++) {
    for (var kw = 0u; kw < K; kw++) {
      acc += x[base + (kh * W + kw) * C4];
    }
  }
  y[i] = acc / f32(K * K);
}
