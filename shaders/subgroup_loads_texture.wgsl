// subgroup_loads_texture: subgroup_loads_buffer.wgsl's functions reading A and B from textures
// that the host fills by copying the tensors in before each launch (gpu::TextureCopy), for
// matmul_texture and conv2d_texture.
//
// Why: on lavapipe from Mesa 22.3 a storage-buffer load is a loop over the 8 lanes with a bounds
// check per lane and per vector component, while a texel fetch is straight-line SIMD code.
// Measured on a 2-core AMD EPYC (Zen 3) with the matmul body, M = 1576, K = 768: 8.4 ->
// 19.0 GFLOP/s at N = 768 and 9.0 -> 22.6 at N = 3072 (B alone from a texture: 14.5 and
// 14.0); a plain streaming read of 64 MB ran at 1.0 GB/s from a storage buffer and 5.6-7.4
// from an rgba32float texture, and the buffer-to-texture copy at 6.4 GB/s (one core). The
// copies cost little beside the matmul (A is M x K, the matmul M x K x N). Adapters where
// buffers are as fast simply time this variant slower and keep `matmul_subgroup`
// (gpu::tuning).
//
// The textures are bound as read-only storage textures, not sampled ones: llvmpipe's sampled
// fetch gathers the mip level's row stride and offset lane by lane before every texel (seen in
// its generated code), the image load does not. Same machine and body, medians of 10
// interleaved launches: 17.6-18.6 -> 22.8-25.4 GFLOP/s at N = 768, 19.6 -> 22.2-23.9 at 3072.
//
// Layout: both textures hold their tensor flat, row after row of TEX_WIDTH texels: element
// (A, r32float) or vec4 (B, rgba32float, or rgba16float for f16 weights) number i sits at
// (i % TEX_WIDTH, i / TEX_WIDTH). Must match ops::matmul's TEXTURE_WIDTH. Every index the body
// computes stays within the copied tensor (its loads are clamped), so no fetch leaves the
// copied texels.

// Binding 1: a_tex, A flat in an r32float texture; binding 2: b_tex, B's vec4 flat in an
// rgba32float (rgba16float for f16 weights) texture.

// B's declaration is rewritten to rgba16float when the kernel is compiled for f16 weights
// (shaders::source), so keep it on one line as written.
@group(0) @binding(1) var a_tex: texture_storage_2d<r32float, read>;
@group(0) @binding(2) var b_tex: texture_storage_2d<rgba32float, read>;

// `texel`: the prelude flat_texture.wgsl.

fn load_a(i: u32) -> f32 {
    return textureLoad(a_tex, texel(i)).x;
}

fn load_b(i: u32) -> vec4<f32> {
    return textureLoad(b_tex, texel(i));
}

// The KBlock (subgroup_k_block.wgsl) starting at vec4 `at` of B, rows n4 vec4 apart.
fn load_k_block(at: u32, n4: u32) -> KBlock {
    return KBlock(load_b(at), load_b(at + n4), load_b(at + 2u * n4), load_b(at + 3u * n4),
                  load_b(at + 4u * n4), load_b(at + 5u * n4), load_b(at + 6u * n4),
                  load_b(at + 7u * n4));
}
