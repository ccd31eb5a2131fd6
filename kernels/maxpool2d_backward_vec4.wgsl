// maxpool2d_backward_vec4.wgsl: maxpool2d_backward.wgsl for C % 4 == 0, four channels per
// invocation. With C4 = C / 4, gathering (no atomics):
//   dx4[n, h, w, c4] = sum over windows (oh, ow) containing (h, w) of
//                      dy4[n, oh, ow, c4] where argmax[n, oh, ow, c4] == (h - oh*S)*K + (w - ow*S)
// (per component). Window oh covers rows [oh*S, oh*S + K), so row h lies in windows
//   oh in [ceil((h - K + 1) / S), floor(h / S)] clipped to [0, OH - 1]  (same for columns).
// Index math: one invocation per input vec4, i = ((n*H + h)*W + w)*C4 + c4,
// i = gid.x + gid.y * num_workgroups.x * WG, i < N*H*W*C4.

override N: u32;
override H: u32;
override W: u32;
override C4: u32;
override OH: u32;
override OW: u32;
override K: u32;
override S: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<vec4f>;
@group(0) @binding(1) var<storage, read> argmax: array<vec4u>;
@group(0) @binding(2) var<storage, read_write> dx: array<vec4f>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * H * W * C4) { return; }
  let c4 = i % C4;
  let w = (i / C4) % W;
  let h = (i / (C4 * W)) % H;
  let n = i / (C4 * W * H);
  // Written without subtraction below zero: u32 would wrap.
  let oh0 = select(0u, (h - K) / S + 1u, h >= K);
  let ow0 = select(0u, (w - K) / S + 1u, w >= K);
  let oh1 = min(h / S, OH - 1u);
  let ow1 = min(w / S, OW - 1u);
  var acc = vec4f(0.0);
  for (var oh = oh0; oh <= oh1; oh++) {
    for (var ow = ow0; ow <= ow1; ow++) {
      let o = ((n * OH + oh) * OW + ow) * C4 + c4;
      let mine = argmax[o] == vec4u((h - oh * S) * K + (w - ow * S));
      acc += select(vec4f(0.0), dy[o], mine);
    }
  }
  dx[i] = acc;
}
