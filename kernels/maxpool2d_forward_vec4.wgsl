// maxpool2d_forward_vec4.wgsl: maxpool2d_forward.wgsl for C % 4 == 0, four channels per
// invocation (vec4 loads are what lavapipe runs fastest). x[N, H, W, C] is read as
// x4[N, H, W, C4] with C4 = C / 4:
//   y[n, oh, ow, c4] = max_{kh, kw < K} x4[n, oh*S + kh, ow*S + kw, c4]   (per component)
//   argmax[n, oh, ow, c4] = kh*K + kw of each component's maximum (first maximum wins ties).
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
@group(0) @binding(2) var<storage, read_write> argmax: array<vec4u>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * OH * OW * C4) { return; }
  let c4 = i % C4;
  let ow = (i / C4) % OW;
  let oh = (i / (C4 * OW)) % OH;
  let n = i / (C4 * OW * OH);
  let base = ((n * H + oh * S) * W + ow * S) * C4 + c4;
  // Start from the window's first element rather than -inf, so a NaN there shows in y.
  var best = x[base];
  var where_ = vec4u(0u);
  for (var kh = 0u; kh < K; kh++) {
    for (var kw = 0u; kw < K; kw++) {
      let v = x[base + (kh * W + kw) * C4];
      // Strictly greater keeps the first maximum, like the reference.
      let greater = v > best;
      best = select(best, v, greater);
      where_ = select(where_, vec4u(kh * K + kw), greater);
    }
  }
  y[i] = best;
  argmax[i] = where_;
}
