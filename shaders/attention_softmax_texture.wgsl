// attention_softmax_texture: attention_softmax (the same p[r, j], 0 for T <= j < Tp) reading the
// scores from a read-only storage texture that the host copies them into before the launch
// (gpu::TextureCopy; flat, four scores per rgba32float texel, as flat_texture.wgsl places
// them; Tp % 4 == 0), for adapters where texel loads are cheaper than buffer loads (lavapipe
// from Mesa 22.3: subgroup_loads_texture.wgsl). It reads each score three times from the
// texture (maximum, sum, weights) and writes each weight once, recomputing exp in the last
// pass, where attention_softmax loads three times and stores twice.
//
// Bindings: 0 params (Meta); 1 p [rows, Tp] as vec4 (written); 2 the scores s [rows, Tp] in an
// rgba32float texture.
// Grid: ceil(rows / 64) workgroups of 64 in any grid shape (linear index wid.x + wid.y * nwg.x);
// one invocation per row (3 Tp / 4 loop steps, within llvmpipe's 65,535 per invocation).

struct Meta { rows: u32, tokens: u32, padded: u32, scale: f32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(2) var s_tex: texture_storage_2d<rgba32float, read>;

// Which of the four scores of texel `q` of a row are real tokens (the rest is key padding).
fn real(q: u32) -> vec4<bool> {
    return q * 4u + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.tokens);
}

// exp(scale * (s - m)) for the real tokens of texel `q` of the row starting at texel `base`, 0
// for the padding.
fn weights(base: u32, q: u32, m: f32) -> vec4<f32> {
    let e = exp((textureLoad(s_tex, texel(base + q)) - m) * params.scale);
    return select(vec4<f32>(0.0), e, real(q));
}

@compute @workgroup_size(64)
fn attention_softmax_texture(@builtin(workgroup_id) wid: vec3<u32>,
                             @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lane: u32) {
    let r = (wid.x + wid.y * nwg.x) * 64u + lane;
    if (r >= params.rows) { return; }
    let n4 = params.padded / 4u;
    let base = r * n4;
    var m4 = vec4<f32>(-3.4e38);
    for (var q = 0u; q < n4; q++) {
        m4 = max(m4, select(vec4<f32>(-3.4e38), textureLoad(s_tex, texel(base + q)), real(q)));
    }
    let m = max(max(m4.x, m4.y), max(m4.z, m4.w));
    var sum4 = vec4<f32>(0.0);
    for (var q = 0u; q < n4; q++) {
        sum4 += weights(base, q, m);
    }
    let inv = 1.0 / ((sum4.x + sum4.y) + (sum4.z + sum4.w));
    for (var q = 0u; q < n4; q++) {
        p[base + q] = weights(base, q, m) * inv;
    }
}
