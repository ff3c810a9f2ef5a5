// conv2d_subgroup: the implicit-GEMM subgroup convolution of conv2d_subgroup_common.wgsl (the
// prelude holds the kernel and its description) with x and w read from storage buffers
// (subgroup_loads_buffer.wgsl).

// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;

@compute @workgroup_size(8)
fn conv2d_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    conv_block(wid, nwg, lane);
}
