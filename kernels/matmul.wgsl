// matmul.wgsl: C[M, N] = op(A) @ op(B) (+ bias[N] on every row), op = identity or transpose.
// A is stored [M, K] (TRANS_A false) or [K, M] (TRANS_A true); B is stored [K, N] or [N, K].
// linear uses it three ways: y = x @ w + b, dx = dy @ w^T (TRANS_B), dw = x^T @ dy (TRANS_A).
//
// Register tiling without workgroup memory (barriers are slow on lavapipe): invocation
// t = gid.x + gid.y * num_workgroups.x * WG owns the 4x4 tile of C at rows m0..m0+3 and
// cols n0..n0+3, n0 = 4 * (t % ceil(N/4)), m0 = 4 * (t / ceil(N/4)), and accumulates it as K
// rank-1 updates acc[r] += A(m0 + r, k) * B(k, n0..n0+3). Measured on lavapipe this beats
// loading 4x4 blocks along k (and 8x4 tiles spill registers). Rows/cols past the edge are
// clamped to the last one, so every load is in bounds, and their results are dropped.
//
// a4/a1 (and b4/b1) are the same buffer bound twice: the host sets VEC_A when A is stored
// [K, M] with M % 4 == 0, so A(m0..m0+3, k) is one aligned vec4 of a4, and VEC_B when B is
// stored [K, N] with N % 4 == 0; otherwise the four values come from scalar loads of a1/b1.

override M: u32;
override N: u32;
override K: u32;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override VEC_A: bool = false;
override VEC_B: bool = false;
override HAS_BIAS: bool = false;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read> a4: array<vec4f>;
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read> b1: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

fn elemA(m: u32, k: u32) -> f32 {
  if (TRANS_A) { return a1[k * M + m]; }
  return a1[m * K + k];
}

fn elemB(k: u32, n: u32) -> f32 {
  if (TRANS_B) { return b1[n * K + k]; }
  return b1[k * N + n];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let tn = (N + 3u) / 4u;
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= ((M + 3u) / 4u) * tn) { return; }
  let n0 = (t % tn) * 4u;
  let m0 = (t / tn) * 4u;
  let m = min(vec4u(m0) + vec4u(0u, 1u, 2u, 3u), vec4u(M - 1u));
  let n = min(vec4u(n0) + vec4u(0u, 1u, 2u, 3u), vec4u(N - 1u));
  var acc: array<vec4f, 4>;
  for (var k = 0u; k < K; k++) {
    var av: vec4f;
    if (VEC_A) {
      av = a4[(k * M + m0) / 4u];
    } else {
      av = vec4f(elemA(m.x, k), elemA(m.y, k), elemA(m.z, k), elemA(m.w, k));
    }
    var bv: vec4f;
    if (VEC_B) {
      bv = b4[(k * N + n0) / 4u];
    } else {
      bv = vec4f(elemB(k, n.x), elemB(k, n.y), elemB(k, n.z), elemB(k, n.w));
    }
    acc[0] += av.x * bv;
    acc[1] += av.y * bv;
    acc[2] += av.z * bv;
    acc[3] += av.w * bv;
  }
  for (var r = 0u; r < 4u; r++) {
    let row = m0 + r;
    if (row >= M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = n0 + j;
      if (col >= N) { break; }
      var v = acc[r][j];
      if (HAS_BIAS) { v += bias[col]; }
      c[row * N + col] = v;
    }
  }
}
