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
//           6 out [M, Cout].
// Grid: groups * ceil(cout_g / 32) * ceil(M / 8) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return). A workgroup is exactly one subgroup
// of 8 lanes (ops::conv2d only routes here when the adapter's subgroup size is fixed at 8) and
// owns 8 output pixels x 32 output channels: lane l holds the vec4 of channels 4l..4l+3 for
// the 8 pixels. The K loop runs over the kernel taps (ky, kx), where each pixel's input
// address is computed once, then over its channels 8 at a time: lane l loads channel ci0 + l
// of each of the 8 pixels and subgroupBroadcast hands every lane each of them, as in
// matmul_subgroup (16 loads per lane per 256 multiply-adds). Channels past the last multiple
// of 8 (all of them for a 3-channel stem) are read by every lane itself.
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
    has_bias: u32, has_scale: u32, has_res: u32, act: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

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
    let cin_g = params.cin / params.groups;
    let g4 = params.n / params.groups / 4u;
    let n4 = params.n / 4u;
    let col_groups = (g4 + 7u) / 8u;
    let per_group = col_groups * ((params.m + 7u) / 8u);
    let wg = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the subgroup stays whole for the broadcasts below.
    if (wg >= per_group * params.groups) { return; }
    let g = wg / per_group;
    let t = wg % per_group;
    let row0 = (t / col_groups) * 8u;
    let c4 = (t % col_groups) * 8u + lane;
    let c4_load = g * g4 + min(c4, g4 - 1u);
    let chan0 = g * cin_g;
    let o0 = origin(row0);
    let o1 = origin(row0 + 1u);
    let o2 = origin(row0 + 2u);
    let o3 = origin(row0 + 3u);
    let o4 = origin(row0 + 4u);
    let o5 = origin(row0 + 5u);
    let o6 = origin(row0 + 6u);
    let o7 = origin(row0 + 7u);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);

    let ci_full = cin_g & ~7u;
    for (var ky = 0u; ky < params.kernel_h; ky++) {
        let dy = i32(ky * params.dilation);
        for (var kx = 0u; kx < params.kernel_w; kx++) {
            let dx = i32(kx * params.dilation);
            let p0 = tap_offset(o0, dy, dx, chan0);
            let p1 = tap_offset(o1, dy, dx, chan0);
            let p2 = tap_offset(o2, dy, dx, chan0);
            let p3 = tap_offset(o3, dy, dx, chan0);
            let p4 = tap_offset(o4, dy, dx, chan0);
            let p5 = tap_offset(o5, dy, dx, chan0);
            let p6 = tap_offset(o6, dy, dx, chan0);
            let p7 = tap_offset(o7, dy, dx, chan0);
            let krow = (ky * params.kernel_w + kx) * cin_g;
            for (var ci0 = 0u; ci0 < ci_full; ci0 += 8u) {
                let c = ci0 + lane;
                let v0 = load(p0, c);
                let v1 = load(p1, c);
                let v2 = load(p2, c);
                let v3 = load(p3, c);
                let v4 = load(p4, c);
                let v5 = load(p5, c);
                let v6 = load(p6, c);
                let v7 = load(p7, c);
                let bi = (krow + ci0) * n4 + c4_load;
                let b0 = w[bi];
                let b1 = w[bi + n4];
                let b2 = w[bi + 2u * n4];
                let b3 = w[bi + 3u * n4];
                let b4 = w[bi + 4u * n4];
                let b5 = w[bi + 5u * n4];
                let b6 = w[bi + 6u * n4];
                let b7 = w[bi + 7u * n4];
                acc0 += row_block(v0, b0, b1, b2, b3, b4, b5, b6, b7);
                acc1 += row_block(v1, b0, b1, b2, b3, b4, b5, b6, b7);
                acc2 += row_block(v2, b0, b1, b2, b3, b4, b5, b6, b7);
                acc3 += row_block(v3, b0, b1, b2, b3, b4, b5, b6, b7);
                acc4 += row_block(v4, b0, b1, b2, b3, b4, b5, b6, b7);
                acc5 += row_block(v5, b0, b1, b2, b3, b4, b5, b6, b7);
                acc6 += row_block(v6, b0, b1, b2, b3, b4, b5, b6, b7);
                acc7 += row_block(v7, b0, b1, b2, b3, b4, b5, b6, b7);
            }
            for (var ci = ci_full; ci < cin_g; ci++) {
                let bv = w[(krow + ci) * n4 + c4_load];
                acc0 += load(p0, ci) * bv;
                acc1 += load(p1, ci) * bv;
                acc2 += load(p2, ci) * bv;
                acc3 += load(p3, ci) * bv;
                acc4 += load(p4, ci) * bv;
                acc5 += load(p5, ci) * bv;
                acc6 += load(p6, ci) * bv;
                acc7 += load(p7, ci) * bv;
            }
        }
    }

    if (c4 >= g4) { return; }
    let col = (g * g4 + c4) * 4u;
    store_row(row0, col, acc0);
    store_row(row0 + 1u, col, acc1);
    store_row(row0 + 2u, col, acc2);
    store_row(row0 + 3u, col, acc3);
    store_row(row0 + 4u, col, acc4);
    store_row(row0 + 5u, col, acc5);
    store_row(row0 + 6u, col, acc6);
    store_row(row0 + 7u, col, acc7);
}

fn store_row(row: u32, col: u32, acc: vec4<f32>) {
    if (row >= params.m) { return; }
    let o = row * params.n + col;
    out[o] = epilogue(acc.x, row, col);
    out[o + 1u] = epilogue(acc.y, row, col + 1u);
    out[o + 2u] = epilogue(acc.z, row, col + 2u);
    out[o + 3u] = epilogue(acc.w, row, col + 3u);
}
