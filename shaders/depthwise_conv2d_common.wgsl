// depthwise_conv2d_common: the body of depthwise_conv2d and depthwise_conv2d_texture, which
// differ only in where they load x and the weights from (their files define `load_x` and
// `load_w`, the vec4 at a vec4 index, and bindings 1 and 2).
//
// A per-channel kh x kw convolution of NHWC activations (groups = Cin = Cout), with the fused
// epilogue:
//   out[b, oy, ox, c] = epilogue(sum_{ky, kx} x[b, oy * stride - pad_top + ky * dil,
//                                               ox * stride - pad_left + kx * dil, c]
//                                             * w[ky, kx, c])       (0 in the padding)
//
// Bindings: 0 params (Meta); 1 x [B, H, W, C] read as vec4 (C % 4 == 0); 2 w [kh, kw, C] as
//           vec4 (`ops::conv_weight_layout` with cin_g = 1); 1 and 2 storage buffers or
//           textures, declared by each kernel; 3 bias [C]; 4 scale [C]; 5 res [B * Ho * Wo, C];
//           6 out [B, Ho, Wo, C]; all as vec4 (epilogue_vec4.wgsl).
// Grid: ceil(B * Ho * ceil(Wo / 4) * C / 4 / 64) workgroups of 64 split by `grid()`. One
// invocation computes 4 channels (a vec4) of 4 horizontally adjacent output pixels, so each
// weight vec4 is loaded once for 4 outputs; consecutive invocations take consecutive channel
// groups, so loads are contiguous on real GPUs and a CPU adapter's 8-lane SIMD thread reads
// 128 consecutive bytes per load.
// Reference: PyTorch Conv2d with groups = in_channels = out_channels.

struct Meta {
    batch: u32, height: u32, width: u32, n: u32,
    out_h: u32, out_w: u32, kernel_h: u32, kernel_w: u32,
    stride: u32, dilation: u32, pad_top: u32, pad_left: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
// Binding 5, res: the prelude residual_buffer.wgsl or residual_texture.wgsl.
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

const STRIP: u32 = 4u;
// Stride 1 and dilation 1 (a pipeline constant, so the other path is compiled out): the strip's
// four outputs read input columns ix0 + kx .. ix0 + kx + 3, so each kx loads one new column and
// reuses three (kw + 3 input loads per kernel row instead of 4 kw).
override UNIT_STEP: bool = false;

// The input vec4 at (row offset `row`, column `ix`), or 0 in the padding. `row` is
// (b * H + iy) * W, already known to lie inside the image.
fn load(row: u32, ix: i32, c4: u32, n4: u32) -> vec4<f32> {
    let inside = ix >= 0 && ix < i32(params.width);
    let column = u32(clamp(ix, 0, i32(params.width) - 1));
    return select(vec4<f32>(0.0), load_x((row + column) * n4 + c4), inside);
}

fn store(pixel: u32, c4: u32, n4: u32, acc: vec4<f32>, t: Cols4) {
    out[pixel * n4 + c4] = epilogue4(acc, pixel, c4, t);
}

// The whole kernel for invocation `i` (linear over the grid of 64-wide workgroups).
fn depthwise_block(i: u32) {
    epilogue_bindings();
    let n4 = params.n / 4u;
    let strips = (params.out_w + STRIP - 1u) / STRIP;
    if (i >= params.batch * params.out_h * strips * n4) { return; }
    let c4 = i % n4;
    let strip = (i / n4) % strips;
    let oy = (i / (n4 * strips)) % params.out_h;
    let b = i / (n4 * strips * params.out_h);
    let ox0 = strip * STRIP;
    let s = i32(params.stride);
    let ix0 = i32(ox0 * params.stride) - i32(params.pad_left);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let iy = i32(oy * params.stride + ky * params.dilation) - i32(params.pad_top);
        if (iy < 0 || iy >= i32(params.height)) { continue; }
        let row = (b * params.height + u32(iy)) * params.width;
        if (UNIT_STEP) {
            var x0 = load(row, ix0, c4, n4);
            var x1 = load(row, ix0 + 1, c4, n4);
            var x2 = load(row, ix0 + 2, c4, n4);
            for (var kx = 0u; kx < params.kernel_w; kx++) {
                let wv = load_w((ky * params.kernel_w + kx) * n4 + c4);
                let x3 = load(row, ix0 + i32(kx) + 3, c4, n4);
                acc0 += x0 * wv;
                acc1 += x1 * wv;
                acc2 += x2 * wv;
                acc3 += x3 * wv;
                x0 = x1;
                x1 = x2;
                x2 = x3;
            }
            continue;
        }
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let wv = load_w((ky * params.kernel_w + kx) * n4 + c4);
            let ix = ix0 + i32(kx * params.dilation);
            acc0 += load(row, ix, c4, n4) * wv;
            acc1 += load(row, ix + s, c4, n4) * wv;
            acc2 += load(row, ix + 2 * s, c4, n4) * wv;
            acc3 += load(row, ix + 3 * s, c4, n4) * wv;
        }
    }

    let pixel = (b * params.out_h + oy) * params.out_w + ox0;
    let t = cols4(c4);
    store(pixel, c4, n4, acc0, t);
    if (ox0 + 1u < params.out_w) { store(pixel + 1u, c4, n4, acc1, t); }
    if (ox0 + 2u < params.out_w) { store(pixel + 2u, c4, n4, acc2, t); }
    if (ox0 + 3u < params.out_w) { store(pixel + 3u, c4, n4, acc3, t); }
}
