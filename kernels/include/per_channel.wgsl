// per_channel.wgsl: NAMEAt(i), the values of the per-channel [C] tensor NAME for the four
// elements 4i .. 4i+3 of an [M, C] tensor read as vec4s (element j has channel j % C).
// Included by the batch-norm kernels once per per-channel tensor, NAME replaced by its name:
//   #include "per_channel.wgsl" for mean, invstd
// Index math: when C % 4 == 0 the four channels are one aligned vec4, NAME[i % (C / 4)] (the
// branch on the override C is resolved when the pipeline is built); otherwise lane k reads
// channel c = (4i + k) % C as NAME[c / 4][c % 4] (pool buffers are padded to 16 bytes).
fn NAMEAt(i: u32) -> vec4f {
  if (C % 4u == 0u) { return NAME[i % (C / 4u)]; }
  let c = (vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u)) % vec4u(C);
  return vec4f(
    NAME[c.x / 4u][c.x % 4u],
    NAME[c.y / 4u][c.y % 4u],
    NAME[c.z / 4u][c.z % 4u],
    NAME[c.w / 4u][c.w % 4u],
  );
}
