// residual_texture: binding 5 of the vec4 epilogue (epilogue_vec4.wgsl), the residual [M, N]
// read from a read-only storage texture that the host copies it into before the launch, flat,
// four channels per texel (placed as flat_texture.wgsl says; ops::texture_launch binds a 1x1
// texture when there is no residual). Prelude of matmul_texture, conv2d_texture and
// depthwise_conv2d_texture. Why: each output's residual is one vec4 load in the store, and a
// storage-buffer load on lavapipe is a loop over the 8 lanes (subgroup_loads_texture.wgsl); with
// K = 64 (ResNet-50's layer1 1x1 convolutions) a workgroup's 80 residual loads were a large
// share beside its 448 texel loads of A and B.

@group(0) @binding(5) var res_tex: texture_storage_2d<rgba32float, read>;

fn keep_res() { _ = res_tex; }

fn load_res(i: u32) -> vec4<f32> { return textureLoad(res_tex, texel(i)); }
