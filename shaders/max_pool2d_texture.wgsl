// max_pool2d_texture: max pooling as max_pool2d_common.wgsl (the prelude) computes it, for
// C % 4 == 0, in the shape CPU adapters (lavapipe) want: one invocation per output pixel,
// which takes the pixel's vec4 of channels one after the other and reads x from a read-only
// storage texture that the host copies it into before the launch (gpu::TextureCopy; flat, four
// channels per rgba32float texel, as flat_texture.wgsl places them). max_pool2d_vec4 loads
// each window cell from a storage buffer (a loop over the lanes on llvmpipe) and divides five
// times per vec4 of channels (eight scalar divisions each: llvmpipe has no vector integer
// division); here a pixel costs three divisions.
//
// Bindings: 1 x [B, H, W, C] in an rgba32float texture; 2 out [B, Ho, Wo, C] as vec4.
// Grid: ceil(B * Ho * Wo / 8) workgroups of 8 in any grid shape (linear index
// wid.x + wid.y * nwg.x); invocations past the last pixel return. Loop steps per invocation:
// at most units * (1 + k + k^2), kept within gpu::LOOP_BUDGET (below llvmpipe's cap of 65,535)
// by ops::pool, which runs wider inputs on max_pool2d_vec4 (at k = 3: C above 18,460).

@group(0) @binding(1) var x_tex: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

fn load(i: u32) -> vec4<f32> { return textureLoad(x_tex, texel(i)); }

@compute @workgroup_size(8)
fn max_pool2d_texture(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lane: u32) {
    let pixel = (wid.x + wid.y * nwg.x) * 8u + lane;
    if (pixel >= params.batch * params.out_h * params.out_w) { return; }
    let ox = pixel % params.out_w;
    let rest = pixel / params.out_w;
    let oy = rest % params.out_h;
    let b = rest / params.out_h;
    var at = pixel * params.units;
    for (var u = 0u; u < params.units; u++) {
        out[at] = window_max_at(b, oy, ox, u);
        at += 1u;
    }
}
