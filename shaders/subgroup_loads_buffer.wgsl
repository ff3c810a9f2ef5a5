// subgroup_loads_buffer: where matmul_subgroup and conv2d_subgroup read their two inputs, A
// (activations, one element per load) and B (weights, one vec4 of four output columns per
// load), from storage buffers. subgroup_loads_texture.wgsl gives the same functions reading
// textures; the kernel bodies (matmul_subgroup_common.wgsl, conv2d_subgroup_common.wgsl)
// call only these. `W`, the weights' element type (f32, or f16 with --f16-weights), is
// declared by each kernel file (gpu::shaders::source rewrites it there).
//
// Binding 1: a, A's elements as array<f32>; binding 2: b, B as array<vec4<W>>.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<W>>;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn load_b(i: u32) -> vec4<f32> {
    return vec4<f32>(b[i]);
}

// The KBlock (subgroup_k_block.wgsl) starting at vec4 index `at` of B, rows n4 vec4 apart.
fn load_k_block(at: u32, n4: u32) -> KBlock {
    return KBlock(load_b(at), load_b(at + n4), load_b(at + 2u * n4), load_b(at + 3u * n4),
                  load_b(at + 4u * n4), load_b(at + 5u * n4), load_b(at + 6u * n4),
                  load_b(at + 7u * n4));
}
