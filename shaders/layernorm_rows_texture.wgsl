// layernorm_rows_texture: the per-row LayerNorm of layernorm_rows_common.wgsl (the prelude holds
// the kernel and its description) reading x, weight and bias from read-only storage textures
// that the host copies them into before the launch (gpu::TextureCopy; flat, four floats per
// rgba32float texel, as flat_texture.wgsl places them): on lavapipe from Mesa 22.3 a
// storage-buffer load is a loop over the 8 lanes with a bounds check per lane and component,
// a texel load straight-line SIMD code (subgroup_loads_texture.wgsl), and this kernel loads five
// vec4 per vec4 it stores.
//
// Bindings 1-3: x [R, C], weight [C] and bias [C] as rgba32float textures.

@group(0) @binding(1) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var weight_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var bias_tex: texture_storage_2d<rgba32float, read>;

fn load_x(i: u32) -> vec4<f32> { return textureLoad(x_tex, texel(i)); }
fn load_w(j: u32) -> vec4<f32> { return textureLoad(weight_tex, texel(j)); }
fn load_b(j: u32) -> vec4<f32> { return textureLoad(bias_tex, texel(j)); }

@compute @workgroup_size(8)
fn layernorm_rows_texture(@builtin(local_invocation_index) lane: u32,
                          @builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    normalise_rows(lane, wid.x + wid.y * nwg.x);
}
