// conv2d_backward_data_generic.wgsl: gradient of the convolution's input for any kernel size,
// stride, padding and channel counts. Every forward product x[n, iy, ix, ci] * w[ky, kx, ci, co]
// with iy = oy * S + ky - P, ix = ox * S + kx - P sends dy[n, oy, ox, co] * w[ky, kx, ci, co]
// back to x, so
//   dx[n, iy, ix, ci] = sum over ky, kx with oy = (iy + P - ky) / S and ox = (ix + P - kx) / S
//                       whole and inside the output, and over co, of dy[n, oy, ox, co] * w[ky, kx, ci, co]
// Index math: one invocation per input element, i = gid.x + gid.y * num_workgroups.x * WG =
// ((n * H + iy) * W + ix) * CIN + ci, i < N * H * W * CIN.

override N: u32;
override H: u32;
override W: u32;
override CIN: u32;
override COUT: u32;
override KH: u32;
override KW: u32;
override S: u32;
override P: u32;
override OH: u32;
override OW: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * H * W * CIN) { return; }
  let ci = i % CIN;
  let ix = (i / CIN) % W;
  let iy = (i / (CIN * W)) % H;
  let n = i / (CIN * W * H);
  var acc = 0.0;
  for (var ky = 0u; ky < KH; ky++) {
    let ty = i32(iy + P) - i32(ky);
    if (ty < 0 || ty % i32(S) != 0 || ty / i32(S) >= i32(OH)) { continue; }
    let oy = u32(ty) / S;
    for (var kx = 0u; kx < KW; kx++) {
      let tx = i32(ix + P) - i32(kx);
      if (tx < 0 || tx % i32(S) != 0 || tx / i32(S) >= i32(OW)) { continue; }
      let ox = u32(tx) / S;
      let db = ((n * OH + oy) * OW + ox) * COUT;
      let wb = ((ky * KW + kx) * CIN + ci) * COUT;
      for (var co = 0u; co < COUT; co++) {
        acc = fma(dy[db + co], w[wb + co], acc);
      }
    }
  }
  dx[i] = acc;
}
