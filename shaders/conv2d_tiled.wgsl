// conv2d_tiled: 2-D convolution of NHWC activations as an implicit GEMM, the variant for real
// GPUs. Per group g (of `groups`), with M = B * Ho * Wo, K = kh * kw * cin_g:
//   out[row, g * cout_g + c] = epilogue(sum_k A[row, k] * w[k, g * cout_g + c])
//   A[row = (b * Ho + oy) * Wo + ox, k = (ky * kw + kx) * cin_g + ci]
//       = x[b, oy * stride - pad_top + ky * dil, ox * stride - pad_left + kx * dil, g * cin_g + ci]
//         (0 where that pixel lies in the padding)
// A is never stored: each tile of it is gathered from x (the im2col is implicit).
//
// Bindings: 0 params (Meta); 1 x [B, H, W, Cin]; 2 w [kh, kw, cin_g, Cout] (HWIO, row k of the
//           GEMM's B, `ops::conv_weight_layout`); 3 bias [Cout]; 4 scale [Cout];
//           5 res [M, Cout] (NHWC of the output); 6 out [M, Cout] (NHWC [B, Ho, Wo, Cout]).
// Grid: (ceil(cout_g / 64) * ceil(M / 64) tiles folded into x and y by `grid()`, groups in z);
//       256 invocations own a 64 x 64 output tile, 4 x 4 each; A and B tiles of depth 16 are
//       staged in workgroup memory (8 KiB), as in matmul_tiled.
// The fixed loops over 4 rows or columns and the 4 x 4 products are written out (//#repeat),
// as in matmul_tiled: 1 + 16 loop steps per 16-deep tile (ops::matmul::tiled_loop_steps).
// Reference: PyTorch Conv2d (cross-correlation); implicit GEMM as in cuDNN's
// IMPLICIT_GEMM algorithm and CUTLASS's conv2d fprop (NHWC activations, KRSC-like filters).

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
@group(0) @binding(2) var<storage, read> w: array<W>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
fn keep_res() { _ = &res; }
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn conv2d_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    epilogue_bindings();
    let cin_g = params.cin / params.groups;
    let cout_g = params.n / params.groups;
    let g = wid.z;
    let col_tiles = (cout_g + TN - 1u) / TN;
    let tile = wid.x + wid.y * nwg.x;
    // Uniform per workgroup, so no invocation skips the barriers below.
    if (tile >= col_tiles * ((params.m + TM - 1u) / TM)) { return; }
    let row0 = (tile / col_tiles) * TM;
    let col0 = (tile % col_tiles) * TN;
    let tid = lid.y * 16u + lid.x;

    // Each invocation stages A rows tid / 16 + 16 i (i < 4) at depth tid % 16 of every K step:
    // the rows' pixel origins are fixed, so decompose them once.
    let kk_a = tid % TK;
    var img_row: array<i32, 4>; // b * H, or -1 past the last row
    var iy0: array<i32, 4>;
    var ix0: array<i32, 4>;
    //#repeat i 4
    {
        let i = {i}u;
        let r = row0 + tid / TK + i * 16u;
        let ox = r % params.out_w;
        let oy = (r / params.out_w) % params.out_h;
        let b = r / (params.out_w * params.out_h);
        img_row[i] = select(-1, i32(b * params.height), r < params.m);
        iy0[i] = i32(oy * params.stride) - i32(params.pad_top);
        ix0[i] = i32(ox * params.stride) - i32(params.pad_left);
    }
    //#end
    let chan0 = g * cin_g;

    var acc: array<f32, 16>;

    for (var k0 = 0u; k0 < params.k; k0 += TK) {
        let k = k0 + kk_a;
        let ci = k % cin_g;
        let tap = k / cin_g;
        let dy = i32((tap / params.kernel_w) * params.dilation);
        let dx = i32((tap % params.kernel_w) * params.dilation);
        //#repeat i 4
        {
            let i = {i}u;
            let iy = iy0[i] + dy;
            let ix = ix0[i] + dx;
            var v = 0.0;
            if (k < params.k && img_row[i] >= 0 && iy >= 0 && iy < i32(params.height)
                && ix >= 0 && ix < i32(params.width)) {
                v = x[(u32(img_row[i] + iy) * params.width + u32(ix)) * params.cin + chan0 + ci];
            }
            a_tile[kk_a * TM + tid / TK + i * 16u] = v;
        }
        //#end
        //#repeat i 4
        {
            let i = {i}u;
            let e = tid + i * 256u;
            let kk = e / TN;
            let c = e % TN;
            var v = 0.0;
            if (k0 + kk < params.k && col0 + c < cout_g) {
                v = f32(w[(k0 + kk) * params.n + g * cout_g + col0 + c]);
            }
            b_tile[kk * TN + c] = v;
        }
        //#end
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var af: array<f32, 4>;
            var bf: array<f32, 4>;
            //#repeat i 4
            {
                let i = {i}u;
                af[i] = a_tile[kk * TM + lid.y * 4u + i];
                bf[i] = b_tile[kk * TN + lid.x * 4u + i];
            }
            //#end
            //#repeat e 16
            {
                let i = {e}u / 4u;
                let j = {e}u % 4u;
                acc[i * 4u + j] += af[i] * bf[j];
            }
            //#end
        }
        workgroupBarrier();
    }

    //#repeat e 16
    {
        let i = {e}u / 4u;
        let j = {e}u % 4u;
        let r = row0 + lid.y * 4u + i;
        let c = col0 + lid.x * 4u + j;
        if (r < params.m && c < cout_g) {
            let col = g * cout_g + c;
            out[r * params.n + col] = epilogue(acc[i * 4u + j], r, col);
        }
    }
    //#end
}
