// augment.wgsl: turns a batch of 8-bit gray S x S images into the model input, f32 NHWC
// [B, O, O, 1], applying one random affine warp and photometric jitter per image, then the
// data set's normalization. O != S resamples (training's low-resolution phase, the keypoint
// model's 64 px view); the warp may include a registration that brings the hand to one pose.
// CPU twin: src/ref/augment.ts; parameters: src/ops/augment.ts.
//
// Per output pixel (x, y) of image b:
//   (sx, sy) = M_b * (x, y, 1)            inverse affine from output to input pixel-index
//                                          coordinates (the resize and the rotation about the
//                                          image centre are folded into M_b on the CPU)
//   s = bilinear sample of image b at (sx, sy), taps outside the image read 0 (black)
//   v = clamp((s / 255) * contrast + offset, 0, 1)   offset = 0.5 * (1 - contrast) + brightness
//   v = v ^ gamma                          skipped when gamma == 1 or v == 0, so identity
//                                          parameters reproduce the input bit for bit
//   y = (v - mean) / std
//
// Index math: one invocation per output pixel on a 3-D grid, x = gid.x < O, y = gid.y < O,
// b = gid.z < count (dispatch [ceil(O/WX), ceil(O/WY), count]: a grid that needs no integer
// division per pixel); output index i = b*O*O + y*O + x.
// Input pixels are packed four per u32, little endian and back to back across images: byte k
// (k = b*S*S + py*S + px) is bits 8*(k % 4) .. 8*(k % 4) + 7 of word k / 4.
//
// params (f32): [mean, std, count, 0] then 12 per image:
//   [m00, m01, m02, m10, m11, m12, contrast, offset, gamma, 0, 0, 0].
// The batch count comes from the dispatch (and is repeated in the header for the CPU twin),
// not from an override, so a last, partial batch reuses the same pipeline.

override S: u32;
override O: u32;
override WX: u32 = 16;
override WY: u32 = 4;

const HEADER: u32 = 4u;
const STRIDE: u32 = 12u;

@group(0) @binding(0) var<storage, read> pixels: array<u32>;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Byte at (px, py) of the image starting at byte `base`, or 0 outside the image.
fn tap(base: u32, px: i32, py: i32) -> f32 {
  if (px < 0 || py < 0 || px >= i32(S) || py >= i32(S)) { return 0.0; }
  let k = base + u32(py) * S + u32(px);
  return f32((pixels[k >> 2u] >> ((k & 3u) * 8u)) & 0xffu);
}

@compute @workgroup_size(WX, WY, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let px = gid.x;
  let py = gid.y;
  let b = gid.z;
  if (px >= O || py >= O) { return; }
  let i = b * O * O + py * O + px;
  let o = HEADER + b * STRIDE;

  let fx = f32(px);
  let fy = f32(py);
  let sx = params[o] * fx + params[o + 1u] * fy + params[o + 2u];
  let sy = params[o + 3u] * fx + params[o + 4u] * fy + params[o + 5u];
  let x0f = floor(sx);
  let y0f = floor(sy);
  let ax = sx - x0f;
  let ay = sy - y0f;
  // Clamping keeps far-away (or non-finite) coordinates from overflowing i32; every tap of a
  // clamped corner is still outside the image, so the sample stays 0.
  let x0 = i32(clamp(x0f, -2.0, f32(S) + 1.0));
  let y0 = i32(clamp(y0f, -2.0, f32(S) + 1.0));
  let base = b * S * S;
  let top = (1.0 - ax) * tap(base, x0, y0) + ax * tap(base, x0 + 1, y0);
  let bottom = (1.0 - ax) * tap(base, x0, y0 + 1) + ax * tap(base, x0 + 1, y0 + 1);
  let s = (1.0 - ay) * top + ay * bottom;

  var v = clamp((s / 255.0) * params[o + 6u] + params[o + 7u], 0.0, 1.0);
  let gamma = params[o + 8u];
  if (gamma != 1.0 && v > 0.0) { v = pow(v, gamma); }
  y[i] = (v - params[0]) / params[1];
}
