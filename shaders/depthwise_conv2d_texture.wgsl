// depthwise_conv2d_texture: depthwise_conv2d loading x and the weights from read-only storage
// textures that the host copies them into before the launch (gpu::TextureCopy; flat, four
// channels per texel, placed as flat_texture.wgsl says): on lavapipe from Mesa 22.3 a texel
// load costs a fraction of a storage-buffer load (subgroup_loads_texture.wgsl). The body,
// bindings and grid are in depthwise_conv2d_common.wgsl, prepended as a prelude.
//
// Binding 1: x [B, H, W, C] in an rgba32float texture; binding 2: the weights [kh, kw, C] in an
// rgba32float texture (rgba16float for f16 weights: shaders::source rewrites the b_tex line).

@group(0) @binding(1) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var b_tex: texture_storage_2d<rgba32float, read>;

fn load_x(i: u32) -> vec4<f32> {
    return textureLoad(x_tex, texel(i));
}

fn load_w(i: u32) -> vec4<f32> {
    return textureLoad(b_tex, texel(i));
}

@compute @workgroup_size(64)
fn depthwise_conv2d_texture(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    depthwise_block(gid.x + gid.y * nwg.x * 64u);
}
