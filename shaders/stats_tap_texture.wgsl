// stats_tap_texture: stats_tap (C % 4 == 0) with the tap read from a texture that the host copies
// it into before the launch (gpu::TextureCopy; flat, four channels per rgba32float texel, as
// flat_texture.wgsl places them): on lavapipe from Mesa 22.3 a texel fetch costs a fraction of
// a storage-buffer load (subgroup_loads_texture.wgsl). Everything else, bindings and grid
// included, is in stats_tap_common.wgsl, prepended as a prelude.
//
// Binding 1: the tap [B, P, C] as an rgba32float texture, bound as a read-only storage texture
// (cheaper to load from on lavapipe than a sampled one: subgroup_loads_texture.wgsl).

@group(0) @binding(1) var tap_tex: texture_storage_2d<rgba32float, read>;

// Channels base..base+3 (base % 4 == 0 here, as C % 4 == 0); `valid` is 4 or the lane is idle.
fn load4(base: u32, valid: u32) -> vec4<f32> {
    return textureLoad(tap_tex, texel(base / 4u));
}

fn load1(i: u32) -> f32 {
    return load4(i & ~3u, 4u)[i % 4u];
}

@compute @workgroup_size(8)
fn stats_tap_texture(@builtin(local_invocation_index) lane: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    tap_stats(lane, wid.x + wid.y * nwg.x);
}
