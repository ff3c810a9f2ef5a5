// matmul_subgroup: the register-blocked subgroup matmul of matmul_subgroup_common.wgsl (the
// prelude holds the kernel and its description) with A and B read from storage buffers
// (subgroup_loads_buffer.wgsl).

// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    matmul_block(wid, nwg, lane);
}
