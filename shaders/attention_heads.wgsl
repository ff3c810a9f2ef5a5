// attention_heads: the fused qkv projection laid out per head for attention's matmul path
// (ops::attention, AttentionVariant::Matmul), which runs q k^T and p v as batched matmuls.
//   q [Z, T, dh]:   q[z, t, d]  = qkv[b, t, 0, h, d]
//   kt [Z, dh, Tp]: kt[z, d, j] = qkv[b, j, 1, h, d], 0 for j >= T
//   v [Z, Tp, dh]:  v[z, j, d]  = qkv[b, j, 2, h, d], 0 for j >= T
// with z = b * H + h and Tp = T rounded up to a multiple of 4 (the subgroup matmul reads B as
// vec4); the zero keys and values make the padded columns of the scores and of p v inert.
//
// Bindings: 0 params (Meta); 1 qkv [B, T, 3, H, dh]; 2 q; 3 kt; 4 v.
// Grid: ceil(Z * Tp * dh / 64) workgroups of 64 in any grid shape (linear index
// wid.x + wid.y * nwg.x); one invocation per (z, j, d).

struct Meta { tokens: u32, padded: u32, heads: u32, head_dim: u32, items: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> kt: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(64)
fn attention_heads(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lane: u32) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lane;
    let dh = params.head_dim;
    let tp = params.padded;
    if (i >= params.items * tp * dh) { return; }
    let d = i % dh;
    let j = (i / dh) % tp;
    let z = i / (dh * tp);
    let b = z / params.heads;
    let h = z % params.heads;
    let width = params.heads * dh;
    let kt_at = (z * dh + d) * tp + j;
    let v_at = (z * tp + j) * dh + d;
    if (j < params.tokens) {
        let src = (b * params.tokens + j) * 3u * width + h * dh + d;
        q[(z * params.tokens + j) * dh + d] = qkv[src];
        kt[kt_at] = qkv[src + width];
        v[v_at] = qkv[src + 2u * width];
    } else {
        kt[kt_at] = 0.0;
        v[v_at] = 0.0;
    }
}
