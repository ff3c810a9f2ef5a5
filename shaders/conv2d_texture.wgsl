// conv2d_texture: the implicit-GEMM subgroup convolution of conv2d_subgroup_common.wgsl (the
// prelude holds the kernel and its description) with x and w read from textures that the host
// copies them into before each launch (subgroup_loads_texture.wgsl says why and how).

@compute @workgroup_size(8)
fn conv2d_texture(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(subgroup_invocation_id) lane: u32) {
    conv_block(wid, nwg, lane);
}
