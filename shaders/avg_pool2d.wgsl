// avg_pool2d: k x k average pooling of NHWC activations with stride s and symmetric padding p,
// as PyTorch's AvgPool2d (ceil_mode=False): the divisor is k * k when count_include_pad is set
// (PyTorch's default), else the number of window cells inside the image.
//   out[b, oy, ox, c] = sum_{ky, kx < k, inside} x[b, oy * s - p + ky, ox * s - p + kx, c] / divisor
// Every window holds at least one input cell (ops::avg_pool2d checks p <= k / 2).
// Bindings: 0 params (Meta); 1 x [B, H, W, C]; 2 out [B, Ho, Wo, C].
// Grid: ceil(B * Ho * Wo * C / 64) workgroups split by `grid()`; one invocation per output,
// consecutive invocations take consecutive channels.
// Reference: torch.nn.functional.avg_pool2d.

struct Meta {
    batch: u32, height: u32, width: u32, channels: u32,
    out_h: u32, out_w: u32, kernel: u32, stride: u32,
    pad: u32, count_include_pad: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn avg_pool2d(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.batch * params.out_h * params.out_w * params.channels) { return; }
    let c = i % params.channels;
    let pixel = i / params.channels;
    let ox = pixel % params.out_w;
    let oy = (pixel / params.out_w) % params.out_h;
    let b = pixel / (params.out_w * params.out_h);
    var sum = 0.0;
    var cells = 0u;
    for (var ky = 0u; ky < params.kernel; ky++) {
        let iy = i32(oy * params.stride + ky) - i32(params.pad);
        if (iy < 0 || iy >= i32(params.height)) { continue; }
        for (var kx = 0u; kx < params.kernel; kx++) {
            let ix = i32(ox * params.stride + kx) - i32(params.pad);
            if (ix < 0 || ix >= i32(params.width)) { continue; }
            sum += x[((b * params.height + u32(iy)) * params.width + u32(ix)) * params.channels + c];
            cells++;
        }
    }
    let divisor = select(cells, params.kernel * params.kernel, params.count_include_pad != 0u);
    out[i] = sum / f32(divisor);
}
