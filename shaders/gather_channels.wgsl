// gather_channels: out[r, k] = src[r, idx[k]] for every row r = (image, position) of a tap's
// [B, P, C] activation and k < K: the activation restricted to K chosen channels, in the order
// idx lists them. `prune` feeds these [B, P*K] rows to a flat Gram accumulator per channel group.
// Bindings: 0 params (Meta); 1 src [rows, C]; 2 idx [K] u32; 3 out [rows, K].
// Grid: ceil(rows * K / 256) workgroups split by `grid()`; no loops (llvmpipe's loop budget).
// Reference: `gather_channels_reference` in tests/prune.rs.

struct Meta { rows: u32, channels: u32, k: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn gather_channels(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.rows * params.k) { return; }
    let r = i / params.k;
    let j = i - r * params.k;
    out[i] = src[r * params.channels + idx[j]];
}
