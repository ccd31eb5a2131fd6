// global_avgpool_backward.wgsl: gradient of the mean over H*W positions:
//   dx[n, h, w, c] = dy[n, c] * INV_HW        (INV_HW = 1 / (H*W))
// with x viewed as [N, HW, C]. dy's [N, C] buffer is read as vec4s.
// Index math: one invocation per four consecutive elements of dx, i over N4 = ceil(N*HW*C / 4);
// element j = 4i + k (lane k) has n = j / (HW*C), c = j % C. When C % 4 == 0 the four lanes
// share n and are channels 4*c4 .. 4*c4+3, one vec4 of dy; otherwise each lane picks its own
// (the branch on the override C is resolved when the pipeline is built).
// i = gid.x + gid.y * num_workgroups.x * WG.

override N: u32;
override HW: u32;
override C: u32;
override INV_HW: f32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> dy: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> dx: array<vec4f>;

fn dyAt(j: u32) -> f32 {
  // Lanes past the end of dx (padding of the last vec4) are clamped to stay inside dy.
  let k = min(j, N * HW * C - 1u);
  let e = (k / (HW * C)) * C + k % C;
  return dy[e / 4u][e % 4u];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= (N * HW * C + 3u) / 4u) { return; }
  var g: vec4f;
  if (C % 4u == 0u) {
    let c4 = i % (C / 4u);
    let n = i / (HW * C / 4u);
    g = dy[n * (C / 4u) + c4];
  } else {
    let j = 4u * i;
    g = vec4f(dyAt(j), dyAt(j + 1u), dyAt(j + 2u), dyAt(j + 3u));
  }
  dx[i] = g * INV_HW;
}
