// conv2d_flip_weights.wgsl: turns HWIO weights w[KH, KW, CIN, COUT] into the weights of the
// transposed convolution that computes dL/dx:
//   wt[KH - 1 - ky, KW - 1 - kx, co, ci] = w[ky, kx, ci, co]
// (kernel rotated by 180 degrees, input and output channels swapped).
// Index math: one invocation per element of w, i = gid.x + gid.y * num_workgroups.x * WG =
// ((ky * KW + kx) * CIN + ci) * COUT + co, i < KH * KW * CIN * COUT.

override KH: u32;
override KW: u32;
override CIN: u32;
override COUT: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> wt: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= KH * KW * CIN * COUT) { return; }
  let co = i % COUT;
  let ci = (i / COUT) % CIN;
  let t = i / (COUT * CIN);
  let ky = t / KW;
  let kx = t % KW;
  wt[(((KH - 1u - ky) * KW + (KW - 1u - kx)) * COUT + co) * CIN + ci] = w[i];
}
