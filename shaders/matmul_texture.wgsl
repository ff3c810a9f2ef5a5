// matmul_texture: the register-blocked subgroup matmul of matmul_subgroup_common.wgsl (the
// prelude holds the kernel and its description) with A and B read from textures that the host
// copies them into before each launch (subgroup_loads_texture.wgsl says why and how).

@compute @workgroup_size(8)
fn matmul_texture(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(subgroup_invocation_id) lane: u32) {
    matmul_block(wid, nwg, lane);
}
