// attention_merge_texture: attention_merge.wgsl's layout change (per-head outputs back to the
// token stream, out[b, t, h * dh + d] = o[b * H + h, t, d]) in the shape CPU adapters (lavapipe)
// want, for head_dim % 4 == 0: one invocation per output row (b, t), which writes the row in
// order as vec4, reading o from a read-only storage texture that the host copies it into
// before the launch (gpu::TextureCopy; flat, four floats per rgba32float texel, as
// flat_texture.wgsl places them). attention_merge, one invocation per element, divides six
// times per element (eight scalar divisions each on llvmpipe); here a row costs two.
//
// Bindings: 0 params (Meta); 1 o [B * H, T, dh] in an rgba32float texture; 2 out [B, T, H * dh]
//           as vec4.
// Grid: ceil(B * T / 8) workgroups of 8 in any grid shape (linear index wid.x + wid.y * nwg.x);
// invocations past the last row return. Loop steps per invocation: H * (1 + dh / 4), kept
// below llvmpipe's 65,535 by ops::attention.

// attention_merge's Meta (total = B * T * H * dh).
struct Meta { tokens: u32, heads: u32, head_dim: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var o_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(8)
fn attention_merge_texture(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lane: u32) {
    let i = (wid.x + wid.y * nwg.x) * 8u + lane;
    if (i >= params.total / (params.heads * params.head_dim)) { return; }
    let t = params.tokens;
    let dh4 = params.head_dim / 4u;
    let b = i / t;
    let tok = i % t;
    // Head h's part of the row in o; the row in out is written in order.
    var src = (b * params.heads * t + tok) * dh4;
    var dst = i * params.heads * dh4;
    for (var h = 0u; h < params.heads; h++) {
        for (var d4 = 0u; d4 < dh4; d4++) {
            out[dst] = textureLoad(o_tex, texel(src + d4));
            dst += 1u;
        }
        src += t * dh4;
    }
}
