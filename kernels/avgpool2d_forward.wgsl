// avgpool2d_forward.wgsl: average pooling of x[N, H, W, C] (NHWC) with a K x K window,
// stride S, no padding: y[n, oh, ow, c] = mean_{kh, kw < K} x[n, oh*S + kh, ow*S + kw, c].
// Index math: one invocation per output, i = ((n*OH + oh)*OW + ow)*C + c with c fastest,
// i = gid.x + gid.y * num_workgroups.x * WG, i < N*OH*OW*C.

override N: u32;
override H: u32;
override W: u32;
override C: u32;
override OH: u32;
override OW: u32;
override K: u32;
override S: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * OH * OW * C) { return; }
  let c = i % C;
  let ow = (i / C) % OW;
  let oh = (i / (C * OW)) % OH;
  let n = i / (C * OW * OH);
  let base = ((n * H + oh * S) * W + ow * S) * C + c;
  var acc = 0.0;
  for (var kh = 0u; kh < K; kh++) {
    for (var kw = 0u; kw < K; kw++) {
      acc += x[base + (kh * W + kw) * C];
    }
  }
  y[i] = acc / f32(K * K);
}
