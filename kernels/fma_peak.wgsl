// fma_peak.wgsl: FMA throughput microkernel, used only to measure the adapter's peak GFLOP/s.
// Each invocation advances 3 independent vec4 chains c = fma(c, a, b) ITERS times (ITERS a
// multiple of 32): 3 chains * 4 lanes * 2 flops * ITERS flops per invocation. Every lane of
// every chain starts from a different value, so no two lanes compute the same thing and the
// compiler cannot merge them; a and b are splats of a per-invocation value, so nothing folds
// at compile time, and a < 1 keeps the values finite. The loop body is unrolled 32 deep
// (fma8 is inlined): on lavapipe, where invocations are SIMD lanes, each loop trip costs a
// mask update, and 3 chains * 4 lanes + a + b = 14 vector registers fit AVX2's 16 unspilled.
// Index math: i = gid.x + gid.y * num_workgroups.x * WG over N invocations; invocation i
// writes the sum of its chains to y[i], so the compiler cannot drop any of the work.

override N: u32;
override ITERS: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read_write> y: array<vec4f>;

fn fma8(c: vec4f, a: vec4f, b: vec4f) -> vec4f {
  var x = fma(c, a, b);
  x = fma(x, a, b);
  x = fma(x, a, b);
  x = fma(x, a, b);
  x = fma(x, a, b);
  x = fma(x, a, b);
  x = fma(x, a, b);
  return fma(x, a, b);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N) { return; }
  let s = f32(i & 1023u) * 1e-6;
  let a = vec4f(0.999999 - s * 1e-3);
  let b = vec4f(s);
  var c0 = b + vec4f(0.11, 0.12, 0.13, 0.14);
  var c1 = b + vec4f(0.21, 0.22, 0.23, 0.24);
  var c2 = b + vec4f(0.31, 0.32, 0.33, 0.34);
  for (var t = 0u; t < ITERS; t += 32u) {
    c0 = fma8(c0, a, b);
    c1 = fma8(c1, a, b);
    c2 = fma8(c2, a, b);
    c0 = fma8(c0, a, b);
    c1 = fma8(c1, a, b);
    c2 = fma8(c2, a, b);
    c0 = fma8(c0, a, b);
    c1 = fma8(c1, a, b);
    c2 = fma8(c2, a, b);
    c0 = fma8(c0, a, b);
    c1 = fma8(c1, a, b);
    c2 = fma8(c2, a, b);
  }
  y[i] = c0 + c1 + c2;
}
