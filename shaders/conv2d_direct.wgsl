// conv2d_direct: 2-D convolution over NHWC activations, one invocation per output element, with
// the fused epilogue (bias = folded BatchNorm, residual, activation). Any kernel size, stride,
// groups (depthwise included) and asymmetric padding (TF "SAME" puts the odd pixel bottom/right).
//   out[b, oy, ox, co] = epilogue(sum_{ky, kx, ci in group(co)} x[b, oy*s - top + ky, ox*s - left + kx, ci]
//                                                               * w[(ky * k + kx) * cin_g + ci_g, co])
// Bindings: 0 params (Meta); 1 x [B, H, W, Cin]; 2 w [k * k * Cin/groups, Cout]; 3 bias [Cout];
//           4 scale [Cout]; 5 res [B * Ho * Wo, Cout]; 6 out [B * Ho * Wo, Cout].
// Grid: ceil(B * Ho * Wo * Cout / 64) workgroups split by `grid()`. Consecutive invocations take
// consecutive output channels, so weight reads are contiguous and input reads shared.
// Reference: PyTorch Conv2d (cross-correlation), NHWC layout as in cuDNN's NHWC kernels.

struct Meta {
    batch: u32, height: u32, width: u32, cin: u32,
    out_h: u32, out_w: u32, n: u32, kernel: u32,
    stride: u32, pad_top: u32, pad_left: u32, groups: u32,
    has_bias: u32, has_scale: u32, has_res: u32, act: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn conv2d_direct(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let total = params.batch * params.out_h * params.out_w * params.n;
    if (i >= total) { return; }
    let co = i % params.n;
    let pixel = i / params.n;
    let ox = pixel % params.out_w;
    let oy = (pixel / params.out_w) % params.out_h;
    let b = pixel / (params.out_w * params.out_h);
    let cin_g = params.cin / params.groups;
    let cout_g = params.n / params.groups;
    let c0 = (co / cout_g) * cin_g;
    let k = params.kernel;
    var acc = 0.0;
    for (var ky = 0u; ky < k; ky++) {
        let iy = i32(oy * params.stride + ky) - i32(params.pad_top);
        if (iy < 0 || iy >= i32(params.height)) { continue; }
        for (var kx = 0u; kx < k; kx++) {
            let ix = i32(ox * params.stride + kx) - i32(params.pad_left);
            if (ix < 0 || ix >= i32(params.width)) { continue; }
            let xbase = ((b * params.height + u32(iy)) * params.width + u32(ix)) * params.cin + c0;
            let wbase = (ky * k + kx) * cin_g * params.n + co;
            for (var c = 0u; c < cin_g; c++) {
                acc += x[xbase + c] * w[wbase + c * params.n];
            }
        }
    }
    out[i] = epilogue(acc, pixel, co);
}
