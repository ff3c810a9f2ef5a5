// conv2d_subgroup_common: 2-D convolution of NHWC activations as an implicit GEMM, the variant for CPU
// adapters (lavapipe), built like matmul_subgroup: a workgroup of 8 invocations runs as one
// 8-wide SIMD thread and loads, not arithmetic, limit speed (../shared/GPU-NOTES.md).
// Same GEMM as conv2d_tiled, per group g, with M = B * Ho * Wo, K = kh * kw * cin_g:
//   out[row, g * cout_g + c] = epilogue(sum_k A[row, k] * w[k, g * cout_g + c])
//   A[row = (b * Ho + oy) * Wo + ox, k = (ky * kw + kx) * cin_g + ci]
//       = x[b, oy * stride - pad_top + ky * dil, ox * stride - pad_left + kx * dil, g * cin_g + ci]
//         (0 where that pixel lies in the padding)
//
// The body shared by `conv2d_subgroup` and `conv2d_texture`, which read x and w through the
// preludes subgroup_loads_buffer.wgsl and subgroup_loads_texture.wgsl (`load_a` for x, `load_b`
// and `load_k_block` for w) and whose entry points call `conv_block`.
//
// Bindings: 0 params (Meta, as conv2d_tiled); 1 x [B, H, W, Cin]; 2 w [kh, kw, cin_g, Cout]
//           read as vec4 (cout_g % 4 == 0); 3 bias [Cout]; 4 scale [Cout]; 5 res [M, Cout];
//           6 out [M, Cout], the last four as vec4 (epilogue_vec4.wgsl).
// Grid: groups * ceil(cout_g / 64) * ceil(M / 40) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return, but the grid is exact: on lavapipe a
// surplus workgroup runs the whole kernel masked off). A workgroup is exactly one subgroup
// of 8 lanes (ops::conv2d only routes here when the adapter's subgroup size is fixed at 8) and
// owns 40 output pixels x 64 output channels: lane l holds two vec4 of channels, 4l..4l+3
// ("lo") and 32+4l..32+4l+3 ("hi"), for the 40 pixels. The K loop runs over the kernel taps
// (ky, kx), where each pixel's input address is computed once, then over its channels 8 at a
// time: lane l loads channel ci0 + l of each of the 40 pixels and subgroupBroadcast hands every
// lane each of them, as in matmul_subgroup (16 vec4 loads of w and 40 of x per 40 x 64 x 8
// multiply-adds). Channels past the last multiple of 8 are read by every lane itself (for a
// 3-channel stem that would be all of them: ROW_TAPS below reads those by kernel rows). Pixels per workgroup on lavapipe (Mesa 22.3, 2-core Xeon), one
// vec4 of channels per lane, 3x3 128->128 28x28 at batch 8 (benches/kernels.rs): 8 pixels
// 88 ms, 16 75, 24 64, 32 64; again after the epilogue became pipeline constants: 24 60-65 ms,
// 32 56, 48 54, 64 56 (ResNet-50's convolutions at batch 8, runs alternated with 24: 1547-1637
// ms per batch against 1708-1717). Two vec4 per lane with 40 pixels, as matmul_subgroup
// (a later, faster machine, `bench` on ResNet-50 at batch 8, alternated): its convolutions
// 1238 and 1268 ms per batch with 48 x 32 blocks against 974 and 958 with 40 x 64.
// Reference: PyTorch Conv2d (cross-correlation); the GEMM micro-kernel of matmul_subgroup.
//
// Every load index is in range: pixels past M are clamped to M - 1 (their stores are skipped),
// a tap in the padding reads channel ci of the first pixel and is replaced by 0 with select,
// vec4 columns are clamped to the group's last one.
//
// ROW_TAPS (a pipeline constant: one group, no dilation, cin < 8, so that the channel loop above
// would have no block of 8 and every lane would load all 40 pixels itself): the kw * cin
// elements of a kernel row are consecutive both in x (pixels ix..ix + kw - 1, all channels) and
// in w (rows (ky * kw + kx) * cin + ci), so the K loop runs over kernel rows and, within one,
// over its elements 8 at a time, loaded and broadcast as the channel blocks are. Lane l's element
// e = k0 + l lies in tap column kx = e / cin; it is 0 past the row's end or in the padding. The
// block's w rows past K are clamped to the last one (their elements are 0). ResNet-50's 7x7 stem
// (cin 3) ran at a fifth of the other convolutions' GFLOP/s without it.

struct Meta {
    batch: u32, height: u32, width: u32, cin: u32,
    out_h: u32, out_w: u32, n: u32, kernel_h: u32,
    kernel_w: u32, stride: u32, dilation: u32, pad_top: u32,
    pad_left: u32, groups: u32, m: u32, k: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
// Binding 5, res: the prelude residual_buffer.wgsl or residual_texture.wgsl.
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

// See the header: kernel rows read as runs of consecutive elements (ops::conv::row_taps).
override ROW_TAPS: bool = false;

// Output pixels per workgroup; ops::conv::SUBGROUP_PIXELS must match (a unit test checks).
const PIXELS: u32 = 40u;
// Output channels per workgroup, two vec4 per lane; ops::conv::SUBGROUP_CHANNELS must match.
const CHANNELS: u32 = 64u;

// The receptive field origin of output pixel `row` (clamped to the last one):
// (b * H, oy * stride - pad_top, ox * stride - pad_left).
fn origin(row: u32) -> vec3<i32> {
    let r = min(row, params.m - 1u);
    let ox = r % params.out_w;
    let oy = (r / params.out_w) % params.out_h;
    let b = r / (params.out_w * params.out_h);
    return vec3<i32>(i32(b * params.height),
                     i32(oy * params.stride) - i32(params.pad_top),
                     i32(ox * params.stride) - i32(params.pad_left));
}

// The element offset of channel `chan0` at tap offset (dy, dx) from `o`, or -1 in the padding.
fn tap_offset(o: vec3<i32>, dy: i32, dx: i32, chan0: u32) -> i32 {
    let iy = o.y + dy;
    let ix = o.z + dx;
    if (iy < 0 || iy >= i32(params.height) || ix < 0 || ix >= i32(params.width)) { return -1; }
    return i32((u32(o.x + iy) * params.width + u32(ix)) * params.cin + chan0);
}

fn load(offset: i32, c: u32) -> f32 {
    return select(0.0, load_a(u32(max(offset, 0)) + c), offset >= 0);
}

// run_start's value for a kernel row in the padding (a real start is at least
// -pad_left * cin: its first taps may lie left of the image).
const NO_ROW: i32 = -1073741824;

// ROW_TAPS: the offset of element 0 of kernel row ky's run for the pixel at `o` (its tap
// column 0, channel 0; it may lie outside the image row), or NO_ROW when row iy is in the
// padding.
fn run_start(o: vec3<i32>, ky: u32) -> i32 {
    let iy = o.y + i32(ky);
    if (iy < 0 || iy >= i32(params.height)) { return NO_ROW; }
    return (i32(u32(o.x + iy) * params.width) + o.z) * i32(params.cin);
}

// ROW_TAPS: element e (tap column kx) of the run starting at `start` for the pixel at `o`, 0 in
// the padding and past the run's `len` elements.
fn load_run(o: vec3<i32>, start: i32, kx: u32, e: u32, len: u32) -> f32 {
    let ix = o.z + i32(kx);
    let inside = start != NO_ROW && ix >= 0 && ix < i32(params.width) && e < len;
    return select(0.0, load_a(u32(max(start + i32(e), 0))), inside);
}

// ROW_TAPS: w rows row0..row0 + 7 at vec4 column `col`, rows past `last` clamped to it.
fn load_k_rows(row0: u32, last: u32, n4: u32, col: u32) -> KBlock {
    return KBlock(load_b(min(row0, last) * n4 + col), load_b(min(row0 + 1u, last) * n4 + col),
                  load_b(min(row0 + 2u, last) * n4 + col), load_b(min(row0 + 3u, last) * n4 + col),
                  load_b(min(row0 + 4u, last) * n4 + col), load_b(min(row0 + 5u, last) * n4 + col),
                  load_b(min(row0 + 6u, last) * n4 + col), load_b(min(row0 + 7u, last) * n4 + col));
}

// The whole kernel for workgroup `wid` of `nwg` (uniform) and subgroup lane `lane`.
fn conv_block(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) {
    epilogue_bindings();
    let cin_g = params.cin / params.groups;
    let g4 = params.n / params.groups / 4u;
    let n4 = params.n / 4u;
    let col_groups = (g4 * 4u + CHANNELS - 1u) / CHANNELS;
    let per_group = col_groups * ((params.m + PIXELS - 1u) / PIXELS);
    let wg = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the subgroup stays whole for the broadcasts below.
    if (wg >= per_group * params.groups) { return; }
    let g = wg / per_group;
    let t = wg % per_group;
    let row0 = (t / col_groups) * PIXELS;
    // This lane's two vec4 columns within the group, and the ones it loads (clamped).
    let c4_lo = (t % col_groups) * (CHANNELS / 4u) + lane;
    let c4_hi = c4_lo + 8u;
    let load_lo = g * g4 + min(c4_lo, g4 - 1u);
    let load_hi = g * g4 + min(c4_hi, g4 - 1u);
    let chan0 = g * cin_g;
    //#repeat r 40
    let o{r} = origin(row0 + {r}u);
    var lo{r} = vec4<f32>(0.0);
    var hi{r} = vec4<f32>(0.0);
    //#end

    if (ROW_TAPS) {
        let len = params.kernel_w * params.cin;
        for (var ky = 0u; ky < params.kernel_h; ky++) {
            //#repeat r 40
            let s{r} = run_start(o{r}, ky);
            //#end
            let krow = ky * len;
            for (var k0 = 0u; k0 < len; k0 += 8u) {
                let e = k0 + lane;
                let kx = e / params.cin;
                //#repeat r 40
                let v{r} = load_run(o{r}, s{r}, kx, e, len);
                //#end
                let wl = load_k_rows(krow + k0, params.k - 1u, n4, load_lo);
                let wh = load_k_rows(krow + k0, params.k - 1u, n4, load_hi);
                //#repeat r 40
                lo{r} += row_block(v{r}, wl);
                hi{r} += row_block(v{r}, wh);
                //#end
            }
        }
    }
    let ci_full = cin_g & ~7u;
    // With ROW_TAPS the taps were all read above (the loop bound is 0).
    for (var ky = 0u; ky < select(params.kernel_h, 0u, ROW_TAPS); ky++) {
        let dy = i32(ky * params.dilation);
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let dx = i32(kx * params.dilation);
            //#repeat r 40
            let p{r} = tap_offset(o{r}, dy, dx, chan0);
            //#end
            let krow = (ky * params.kernel_w + kx) * cin_g;
            for (var ci0 = 0u; ci0 < ci_full; ci0 += 8u) {
                let c = ci0 + lane;
                //#repeat r 40
                let v{r} = load(p{r}, c);
                //#end
                let wl = load_k_block((krow + ci0) * n4 + load_lo, n4);
                let wh = load_k_block((krow + ci0) * n4 + load_hi, n4);
                //#repeat r 40
                lo{r} += row_block(v{r}, wl);
                hi{r} += row_block(v{r}, wh);
                //#end
            }
            for (var ci = ci_full; ci < cin_g; ci++) {
                let bv_lo = load_b((krow + ci) * n4 + load_lo);
                let bv_hi = load_b((krow + ci) * n4 + load_hi);
                //#repeat r 40
                let y{r} = load(p{r}, ci);
                lo{r} += y{r} * bv_lo;
                hi{r} += y{r} * bv_hi;
                //#end
            }
        }
    }

    if (c4_lo >= g4) { return; }
    let t_lo = cols4(g * g4 + c4_lo);
    //#repeat r 40
    store_row(row0 + {r}u, g * g4 + c4_lo, lo{r}, t_lo);
    //#end
    if (c4_hi >= g4) { return; }
    let t_hi = cols4(g * g4 + c4_hi);
    //#repeat r 40
    store_row(row0 + {r}u, g * g4 + c4_hi, hi{r}, t_hi);
    //#end
}

fn store_row(row: u32, c4: u32, acc: vec4<f32>, t: Cols4) {
    if (row >= params.m) { return; }
    out[row * (params.n / 4u) + c4] = epilogue4(acc, row, c4, t);
}
