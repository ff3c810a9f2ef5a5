// matmul_subgroup: the register-blocked subgroup matmul of matmul_subgroup_common.wgsl (the
// prelude holds the kernel and its description) with A and B read from storage buffers.
//
// Binding 1: a, A's elements (rows at a_stride) as array<f32>; binding 2: b, B [K, N] as
// array<vec4<W>>.

@group(0) @binding(1) var<storage, read> a: array<f32>;
// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;
@group(0) @binding(2) var<storage, read> b: array<vec4<W>>;

fn load_a(i: u32) -> f32 {
    return a[i];
}

fn load_b(i: u32) -> vec4<f32> {
    return vec4<f32>(b[i]);
}

// The KBlock (subgroup_k_block.wgsl) starting at vec4 index `at` of b, rows n4 vec4 apart.
fn load_k_block(at: u32, n4: u32) -> KBlock {
    return KBlock(vec4<f32>(b[at]), vec4<f32>(b[at + n4]),
                  vec4<f32>(b[at + 2u * n4]), vec4<f32>(b[at + 3u * n4]),
                  vec4<f32>(b[at + 4u * n4]), vec4<f32>(b[at + 5u * n4]),
                  vec4<f32>(b[at + 6u * n4]), vec4<f32>(b[at + 7u * n4]));
}

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    matmul_block(wid, nwg, lane);
}
