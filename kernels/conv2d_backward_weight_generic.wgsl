// conv2d_backward_weight_generic.wgsl: partial sums of the gradient of the convolution's
// weights for any kernel size, stride, padding and channel counts. Output pixels
// p = (n * OH + oy) * OW + ox are cut into NCHUNK chunks of CHUNK pixels, and
//   part[c, ky, kx, ci, co] = sum over p in chunk c of x[n, oy * S + ky - P, ox * S + kx - P, ci]
//                                                      * dy[p, co]
// (zero outside the image); the host sums part over c (sumMiddle) to get dL/dw.
// Index math: one invocation per partial sum, i = gid.x + gid.y * num_workgroups.x * WG =
// c * (KH * KW * CIN * COUT) + ((ky * KW + kx) * CIN + ci) * COUT + co, i < NCHUNK * that size.

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
override CHUNK: u32;
override NCHUNK: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  let size = KH * KW * CIN * COUT;
  if (i >= NCHUNK * size) { return; }
  let e = i % size;
  let c = i / size;
  let co = e % COUT;
  let ci = (e / COUT) % CIN;
  let kx = (e / (COUT * CIN)) % KW;
  let ky = e / (COUT * CIN * KW);
  let p1 = min(N * OH * OW, (c + 1u) * CHUNK);
  var acc = 0.0;
  for (var p = c * CHUNK; p < p1; p++) {
    let ox = p % OW;
    let oy = (p / OW) % OH;
    let n = p / (OW * OH);
    let iy = i32(oy * S + ky) - i32(P);
    let ix = i32(ox * S + kx) - i32(P);
    if (iy < 0 || iy >= i32(H) || ix < 0 || ix >= i32(W)) { continue; }
    acc = fma(x[((n * H + u32(iy)) * W + u32(ix)) * CIN + ci], dy[p * COUT + co], acc);
  }
  part[i] = acc;
}
