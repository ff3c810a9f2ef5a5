// rows_texture: rows_vec4.wgsl's `load4` and `load1` reading the rows from a texture that the
// host copies the batch into before the launch (gpu::TextureCopy; flat, four features per
// rgba32float texel, placed as flat_texture.wgsl says; D % 4 == 0). On lavapipe from Mesa 22.3
// a texel fetch costs a fraction of a storage-buffer load, the more so from a read-only storage
// texture (subgroup_loads_texture.wgsl).
// Prelude of rdm_sketch_texture.

@group(0) @binding(1) var x_tex: texture_storage_2d<rgba32float, read>;

// x[i..i + 4] for i % 4 == 0 (every quad of a row lies inside it: `valid` is 4).
fn load4(i: u32, valid: u32) -> vec4<f32> {
    return textureLoad(x_tex, texel(i / 4u));
}

fn load1(i: u32) -> f32 {
    return load4(i & ~3u, 4u)[i % 4u];
}
