// batchnorm2d_dyxhat.wgsl: p = dy * xhat with xhat = (x - mean[c]) * invstd[c], which
// sumMiddle turns into dgamma = sum over rows of dy * xhat.
// Layout: x is viewed as [M, C] (M = N*H*W rows of an NHWC batch) and processed as N4 =
// ceil(M*C / 4) vec4s of consecutive elements; element j = 4i + k has channel j % C. The
// per-channel [C] tensors are read as vec4s too (pool buffers are padded to 16 bytes).
// Index math: one invocation per vec4, i = gid.x + gid.y * num_workgroups.x * WG, i < N4.

override N4: u32;
override C: u32;
override WG: u32 = 64;

@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read> dy: array<vec4f>;
@group(0) @binding(2) var<storage, read> mean: array<vec4f>;
@group(0) @binding(3) var<storage, read> invstd: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> p: array<vec4f>;

// Channels of the four elements 4i .. 4i+3.
fn lanes(i: u32) -> vec4u {
  return (vec4u(4u * i) + vec4u(0u, 1u, 2u, 3u)) % vec4u(C);
}

// Per-channel values for the four elements of vec4 i. When C % 4 == 0 they are one aligned
// vec4 (the branch on the override C is resolved when the pipeline is built); otherwise each
// lane picks its own channel.
fn meanAt(i: u32) -> vec4f {
  if (C % 4u == 0u) { return mean[i % (C / 4u)]; }
  let c = lanes(i);
  return vec4f(
    mean[c.x / 4u][c.x % 4u],
    mean[c.y / 4u][c.y % 4u],
    mean[c.z / 4u][c.z % 4u],
    mean[c.w / 4u][c.w % 4u],
  );
}

fn invstdAt(i: u32) -> vec4f {
  if (C % 4u == 0u) { return invstd[i % (C / 4u)]; }
  let c = lanes(i);
  return vec4f(
    invstd[c.x / 4u][c.x % 4u],
    invstd[c.y / 4u][c.y % 4u],
    invstd[c.z / 4u][c.z % 4u],
    invstd[c.w / 4u][c.w % 4u],
  );
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= N4) { return; }
  p[i] = dy[i] * (x[i] - meanAt(i)) * invstdAt(i);
}
