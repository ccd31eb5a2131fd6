// maxpool2d_backward.wgsl: gradient of max pooling, by gathering (no atomics):
//   dx[n, h, w, c] = sum over windows (oh, ow) containing (h, w) whose argmax is (h, w)
//                    of dy[n, oh, ow, c].
// Window oh covers rows [oh*S, oh*S + K), so row h lies in windows
//   oh in [ceil((h - K + 1) / S), floor(h / S)] clipped to [0, OH - 1]  (same for columns);
// with overlapping windows (K > S) an input can receive from several outputs.
// Index math: one invocation per input, i = ((n*H + h)*W + w)*C + c with c fastest,
// i = gid.x + gid.y * num_workgroups.x * WG, i < N*H*W*C.

override N: u32;
override H: u32;
override W: u32;
override C: u32;
override OH: u32;
override OW: u32;
override K: u32;
override S: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> argmax: array<u32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N * H * W * C) { return; }
  let c = i % C;
  let w = (i / C) % W;
  let h = (i / (C * W)) % H;
  let n = i / (C * W * H);
  // Written without subtraction below zero: u32 would wrap.
  let oh0 = select(0u, (h - K) / S + 1u, h >= K);
  let ow0 = select(0u, (w - K) / S + 1u, w >= K);
  let oh1 = min(h / S, OH - 1u);
  let ow1 = min(w / S, OW - 1u);
  var acc = 0.0;
  for (var oh = oh0; oh <= oh1; oh++) {
    for (var ow = ow0; ow <= ow1; ow++) {
      let o = ((n * OH + oh) * OW + ow) * C + c;
      if (argmax[o] == (h - oh * S) * K + (w - ow * S)) {
        acc += dy[o];
      }
    }
  }
  dx[i] = acc;
}
