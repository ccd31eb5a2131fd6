// fill.wgsl: sets every 32-bit word of a buffer to the bit pattern BITS
// (NaN for the "did the kernel write every element?" tests, 1.0 for a loss seed).
// Index math: one invocation per word, i = gid.x + gid.y * num_workgroups.x * WG.

override N: u32;
override BITS: u32;
override WG: u32; // the program's workgroupSize, set by the engine (src/engine/engine.ts)

@group(0) @binding(0) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N) { return; }
  y[i] = BITS;
}
