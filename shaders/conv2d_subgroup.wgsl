// conv2d_subgroup: 2-D convolution of NHWC activations as an implicit GEMM, the variant for CPU
// adapters (lavapipe), built like matmul_subgroup: a workgroup of 8 invocations runs as one
// 8-wide SIMD thread and loads, not arithmetic, limit speed (../shared/GPU-NOTES.md).
// Same GEMM as conv2d_tiled, per group g, with M = B * Ho * Wo, K = kh * kw * cin_g:
//   out[row, g * cout_g + c] = epilogue(sum_k A[row, k] * w[k, g * cout_g + c])
//   A[row = (b * Ho + oy) * Wo + ox, k = (ky * kw + kx) * cin_g + ci]
//       = x[b, oy * stride - pad_top + ky * dil, ox * stride - pad_left + kx * dil, g * cin_g + ci]
//         (0 where that pixel lies in the padding)
//
// Bindings: 0 params (Meta, as conv2d_tiled); 1 x [B, H, W, Cin]; 2 w [kh, kw, cin_g, Cout]
//           read as vec4 (cout_g % 4 == 0); 3 bias [Cout]; 4 scale [Cout]; 5 res [M, Cout];
//           6 out [M, Cout], the last four as vec4 (epilogue_vec4.wgsl).
// Grid: groups * ceil(cout_g / 32) * ceil(M / 48) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return, but the grid is exact: on lavapipe a
// surplus workgroup runs the whole kernel masked off). A workgroup is exactly one subgroup
// of 8 lanes (ops::conv2d only routes here when the adapter's subgroup size is fixed at 8) and
// owns 48 output pixels x 32 output channels: lane l holds the vec4 of channels 4l..4l+3 for
// the 48 pixels. The K loop runs over the kernel taps (ky, kx), where each pixel's input
// address is computed once, then over its channels 8 at a time: lane l loads channel ci0 + l
// of each of the 48 pixels and subgroupBroadcast hands every lane each of them, as in
// matmul_subgroup (32 vec4-component loads of w and 48 of x per 48 x 32 x 8 multiply-adds).
// Channels past the last multiple of 8 (all of them for a 3-channel stem) are read by every
// lane itself. Pixels per workgroup on lavapipe (Mesa 22.3, 2-core Xeon), 3x3 128->128 28x28
// at batch 8 (benches/kernels.rs): 8 pixels 88 ms, 16 75, 24 64, 32 64; again after the
// epilogue became pipeline constants: 24 60-65 ms, 32 56, 48 54, 64 56 (ResNet-50's
// convolutions at batch 8, runs alternated with 24: 1547-1637 ms per batch against 1708-1717).
// Reference: PyTorch Conv2d (cross-correlation); the GEMM micro-kernel of matmul_subgroup.
//
// Every load index is in range: pixels past M are clamped to M - 1 (their stores are skipped),
// a tap in the padding reads channel ci of the first pixel and is replaced by 0 with select,
// vec4 columns are clamped to the group's last one.

struct Meta {
    batch: u32, height: u32, width: u32, cin: u32,
    out_h: u32, out_w: u32, n: u32, kernel_h: u32,
    kernel_w: u32, stride: u32, dilation: u32, pad_top: u32,
    pad_left: u32, groups: u32, m: u32, k: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;
@group(0) @binding(2) var<storage, read> w: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> res: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

// Output pixels per workgroup; ops::conv::SUBGROUP_PIXELS must match (a unit test checks).
const PIXELS: u32 = 48u;

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
    return select(0.0, x[u32(max(offset, 0)) + c], offset >= 0);
}

// v * w[k0 + i] summed over the 8 steps i, with v taken from lane i (see matmul_subgroup).
fn row_block(v: f32, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
             b4: vec4<f32>, b5: vec4<f32>, b6: vec4<f32>, b7: vec4<f32>) -> vec4<f32> {
    return subgroupBroadcast(v, 0u) * b0 + subgroupBroadcast(v, 1u) * b1
         + subgroupBroadcast(v, 2u) * b2 + subgroupBroadcast(v, 3u) * b3
         + subgroupBroadcast(v, 4u) * b4 + subgroupBroadcast(v, 5u) * b5
         + subgroupBroadcast(v, 6u) * b6 + subgroupBroadcast(v, 7u) * b7;
}

@compute @workgroup_size(8)
fn conv2d_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    epilogue_bindings();
    let cin_g = params.cin / params.groups;
    let g4 = params.n / params.groups / 4u;
    let n4 = params.n / 4u;
    let col_groups = (g4 + 7u) / 8u;
    let per_group = col_groups * ((params.m + PIXELS - 1u) / PIXELS);
    let wg = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the subgroup stays whole for the broadcasts below.
    if (wg >= per_group * params.groups) { return; }
    let g = wg / per_group;
    let t = wg % per_group;
    let row0 = (t / col_groups) * PIXELS;
    let c4 = (t % col_groups) * 8u + lane;
    let c4_load = g * g4 + min(c4, g4 - 1u);
    let chan0 = g * cin_g;
    //#repeat r 48
    let o{r} = origin(row0 + {r}u);
    var acc{r} = vec4<f32>(0.0);
    //#end

    let ci_full = cin_g & ~7u;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let dy = i32(ky * params.dilation);
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let dx = i32(kx * params.dilation);
            //#repeat r 48
            let p{r} = tap_offset(o{r}, dy, dx, chan0);
            //#end
            let krow = (ky * params.kernel_w + kx) * cin_g;
            for (var ci0 = 0u; ci0 < ci_full; ci0 += 8u) {
                let c = ci0 + lane;
                //#repeat r 48
                let v{r} = load(p{r}, c);
                //#end
                let bi = (krow + ci0) * n4 + c4_load;
                let b0 = vec4<f32>(w[bi]);
                let b1 = vec4<f32>(w[bi + n4]);
                let b2 = vec4<f32>(w[bi + 2u * n4]);
                let b3 = vec4<f32>(w[bi + 3u * n4]);
                let b4 = vec4<f32>(w[bi + 4u * n4]);
                let b5 = vec4<f32>(w[bi + 5u * n4]);
                let b6 = vec4<f32>(w[bi + 6u * n4]);
                let b7 = vec4<f32>(w[bi + 7u * n4]);
                //#repeat r 48
                acc{r} += row_block(v{r}, b0, b1, b2, b3, b4, b5, b6, b7);
                //#end
            }
            for (var ci = ci_full; ci < cin_g; ci++) {
                let bv = vec4<f32>(w[(krow + ci) * n4 + c4_load]);
                //#repeat r 48
                acc{r} += load(p{r}, ci) * bv;
                //#end
            }
        }
    }

    if (c4 >= g4) { return; }
    let col4 = g * g4 + c4;
    //#repeat r 48
    store_row(row0 + {r}u, col4, acc{r});
    //#end
}

fn store_row(row: u32, c4: u32, acc: vec4<f32>) {
    if (row >= params.m) { return; }
    out[row * (params.n / 4u) + c4] = epilogue4(acc, row, c4);
}
