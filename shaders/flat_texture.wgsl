// flat_texture: where element i of a tensor copied flat into a 2-D texture sits (gpu::TextureCopy:
// rows of TEX_WIDTH texels, filled in order). TEX_WIDTH must equal gpu::ops::TEXTURE_WIDTH (a
// unit test checks); a power of two, so the split is a mask and a shift. Prelude of the kernels
// that read their inputs from textures (subgroup_loads_texture.wgsl, stats_tap_texture).

const TEX_SHIFT: u32 = 12u;
const TEX_MASK: u32 = 4095u; // TEX_WIDTH - 1, TEX_WIDTH = 4096

fn texel(i: u32) -> vec2<u32> {
    return vec2<u32>(i & TEX_MASK, i >> TEX_SHIFT);
}
