// conv2d_forward_generic.wgsl: 2D convolution for any kernel size, stride, padding and channel
// counts (the fast kernels conv2d_rows_*.wgsl cover 3x3 stride 1). NHWC activations, HWIO
// weights, zero padding:
//   y[n, oy, ox, co] = bias[co] + sum_{ky, kx, ci} x[n, oy * S + ky - P, ox * S + kx - P, ci]
//                                                  * w[ky, kx, ci, co]
// Index math: one invocation per output element, i = gid.x + gid.y * num_workgroups.x * WG =
// ((n * OH + oy) * OW + ox) * COUT + co, i < N * OH * OW * COUT.

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
override HAS_BIAS: bool;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * OH * OW * COUT) { return; }
  let co = i % COUT;
  let ox = (i / COUT) % OW;
  let oy = (i / (COUT * OW)) % OH;
  let n = i / (COUT * OW * OH);
  var acc = 0.0;
  if (HAS_BIAS) { acc = bias[co]; }
  for (var ky = 0u; ky < KH; ky++) {
    let iy = i32(oy * S + ky) - i32(P);
    if (iy < 0 || iy >= i32(H)) { continue; }
    for (var kx = 0u; kx < KW; kx++) {
      let ix = i32(ox * S + kx) - i32(P);
      if (ix < 0 || ix >= i32(W)) { continue; }
      let xb = ((n * H + u32(iy)) * W + u32(ix)) * CIN;
      let wb = (ky * KW + kx) * CIN * COUT + co;
      for (var ci = 0u; ci < CIN; ci++) {
        acc = fma(x[xb + ci], w[wb + ci * COUT], acc);
      }
    }
  }
  y[i] = acc;
}
