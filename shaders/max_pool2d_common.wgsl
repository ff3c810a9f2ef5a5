// max_pool2d_common: k x k max pooling of NHWC activations with stride s and symmetric padding
// p, as PyTorch's MaxPool2d (ceil_mode=False, dilation 1), which pads with -inf: padded cells
// never win, and a NaN in a window propagates to its output as in PyTorch.
//   out[b, oy, ox, c] = max_{ky, kx < k, inside} x[b, oy * s - p + ky, ox * s - p + kx, c]
// The body shared by `max_pool2d` (one channel per invocation, any C), `max_pool2d_vec4`
// (four, C % 4 == 0) and `max_pool2d_texture` (every vec4 of channels of one output pixel per
// invocation, from a texture copy); each declares bindings 1 and 2 and `load` (unit i of x as
// a vec4), writes its own output, and counts `params.units` in its own unit (channels, or vec4
// of channels).
// Bindings: 0 params (Meta); 1 x [B, H, W, C]; 2 out [B, Ho, Wo, C].
// Grid (max_pool2d, max_pool2d_vec4): ceil(B * Ho * Wo * units / 64) workgroups split by
// `grid()`; one invocation per output unit, consecutive invocations take consecutive units.
//
// Branch-free window (llvmpipe runs both sides of every branch under a lane mask): a window
// cell outside the image is clamped to the nearest row or column inside it, which lies in the
// same window (ops::max_pool2d checks p <= k / 2, so the window starting at -p reaches row 0,
// and the last window starts at or before row H - 1): a repeated cell cannot change a max.
// Reference: torch.nn.functional.max_pool2d.

struct Meta {
    batch: u32, height: u32, width: u32, units: u32,
    out_h: u32, out_w: u32, kernel: u32, stride: u32,
    pad: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;

const ABS_MASK: u32 = 0x7fffffffu;
const INF_BITS: u32 = 0x7f800000u;

// The max over the window of output unit i (i < B * Ho * Wo * units).
fn window_max(i: u32) -> vec4<f32> {
    let u = i % params.units;
    let pixel = i / params.units;
    let ox = pixel % params.out_w;
    let oy = (pixel / params.out_w) % params.out_h;
    let b = pixel / (params.out_w * params.out_h);
    return window_max_at(b, oy, ox, u);
}

// The max over the window of unit u of output pixel (b, oy, ox).
fn window_max_at(b: u32, oy: u32, ox: u32, u: u32) -> vec4<f32> {
    let y0 = i32(oy * params.stride) - i32(params.pad);
    let x0 = i32(ox * params.stride) - i32(params.pad);
    let last_y = i32(params.height) - 1;
    let last_x = i32(params.width) - 1;
    // -inf cannot be written as a WGSL constant: start from the window's first cell (clamped).
    var best = load(((b * params.height + u32(clamp(y0, 0, last_y))) * params.width
        + u32(clamp(x0, 0, last_x))) * params.units + u);
    for (var ky = 0u; ky < params.kernel; ky++) {
        let row = (b * params.height + u32(clamp(y0 + i32(ky), 0, last_y))) * params.width;
        for (var kx = 0u; kx < params.kernel; kx++) {
            let v = load((row + u32(clamp(x0 + i32(kx), 0, last_x))) * params.units + u);
            // NaN sticks once taken (no v > NaN holds). It is tested on the bits: compilers may
            // fold `v != v` to false (lavapipe does).
            let nan = (bitcast<vec4<u32>>(v) & vec4<u32>(ABS_MASK)) > vec4<u32>(INF_BITS);
            best = select(best, v, (v > best) | nan);
        }
    }
    return best;
}
