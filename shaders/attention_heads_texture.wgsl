// attention_heads_texture: attention_heads.wgsl's layout change (q, kt and v per head from the
// fused qkv projection; the formulas and the zero padding are there) in the shape CPU adapters
// (lavapipe) want, for head_dim % 4 == 0: one invocation per token row (b, j) of the padded
// token range, which walks the row's heads and vec4 of head_dim, reading qkv from a read-only
// storage texture that the host copies it into before the launch (gpu::TextureCopy; flat, four
// floats per rgba32float texel, as flat_texture.wgsl places them). attention_heads, one
// invocation per element, divides five times per element, and llvmpipe has no vector integer
// division (each is eight scalar divisions); here a row costs two. q and v are written as vec4,
// kt (transposed) as four floats.
//
// Bindings: 0 params (Meta); 1 qkv [B, T, 3, H, dh] in an rgba32float texture; 2 q [Z, T, dh]
//           as vec4; 3 kt [Z, dh, Tp]; 4 v [Z, Tp, dh] as vec4.
// Grid: ceil(B * Tp / 8) workgroups of 8 in any grid shape (linear index wid.x + wid.y * nwg.x);
// invocations past the last row return. Loop steps per invocation: H * (1 + dh / 4), kept
// below llvmpipe's 65,535 by ops::attention.

// attention_heads' Meta (items = Z = B * H).
struct Meta { tokens: u32, padded: u32, heads: u32, head_dim: u32, items: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var qkv_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> kt: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;

@compute @workgroup_size(8)
fn attention_heads_texture(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lane: u32) {
    let i = (wid.x + wid.y * nwg.x) * 8u + lane;
    let t = params.tokens;
    let tp = params.padded;
    if (i >= (params.items / params.heads) * tp) { return; }
    let dh = params.head_dim;
    let dh4 = dh / 4u;
    let w4 = params.heads * dh4;
    let b = i / tp;
    let j = i % tp;
    let real = j < t;
    let zero = vec4<f32>(0.0);
    // The row's q, k and v in qkv (a padded row reads the last real one and stores zeros).
    var src = (b * t + min(j, t - 1u)) * 3u * w4;
    // Head h's first element in q (only real rows are stored), kt and v; all advance by addition.
    var q_at = (b * params.heads * t + j) * dh4;
    var kt_at = b * params.heads * dh * tp + j;
    var v_at = (b * params.heads * tp + j) * dh4;
    for (var h = 0u; h < params.heads; h++) {
        for (var d4 = 0u; d4 < dh4; d4++) {
            let qv = textureLoad(qkv_tex, texel(src));
            let kv = select(zero, textureLoad(qkv_tex, texel(src + w4)), real);
            let vv = select(zero, textureLoad(qkv_tex, texel(src + 2u * w4)), real);
            if (real) { q[q_at + d4] = qv; }
            kt[kt_at] = kv.x;
            kt[kt_at + tp] = kv.y;
            kt[kt_at + 2u * tp] = kv.z;
            kt[kt_at + 3u * tp] = kv.w;
            v[v_at + d4] = vv;
            src += 1u;
            kt_at += 4u * tp;
        }
        q_at += t * dh4;
        v_at += tp * dh4;
    }
}
