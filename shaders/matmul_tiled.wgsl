// matmul_tiled: out[M, N] = epilogue(A[M, K] @ B[K, N]), the variant for real GPUs.
//
// Bindings: 0 params (Meta); 1 a [rows at a_stride]; 2 b [K, N]; 3 bias [N]; 4 scale [N]; 5 res [M, N];
//           6 out [M, N].
// Grid: (ceil(N / 64), ceil(M / 64), batch); item z reads A from element z * a_batch and B
// from z * b_batch, and writes rows z * M.. of out (and res). 256 invocations, each owning a 4x4 block of the 64x64
// output tile; A and B tiles of depth 16 are staged in workgroup memory (8 KiB).
// `a_stride` lets A be a strided row selection (e.g. the CLS token of every image).
// Reference: the classic shared-memory tiling (e.g. CUTLASS's SIMT tiles); any M, N, K.

struct Meta {
    m: u32, n: u32, k: u32, a_stride: u32,
    a_batch: u32, b_batch: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
// The fixed loops over 4 rows or columns, and over the 4 x 4 products, are written out
// (//#repeat); the loop over a tile's 16 k stays a loop. So one invocation runs 1 + 16 loop
// steps per 16-deep tile whatever the compiler unrolls: on llvmpipe every loop step counts
// against its silent cap (ops::matmul::tiled_loop_steps).
alias W = f32;
@group(0) @binding(2) var<storage, read> b: array<W>;
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
fn matmul_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>) {
    epilogue_bindings();
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;

    for (var k0 = 0u; k0 < params.k; k0 += TK) {
        //#repeat i 4
        {
            let i = {i}u;
            let e = tid + i * 256u;
            let r = e / TK;
            let kk = e % TK;
            var v = 0.0;
            if (row0 + r < params.m && k0 + kk < params.k) {
                v = a[wid.z * params.a_batch + (row0 + r) * params.a_stride + k0 + kk];
            }
            a_tile[kk * TM + r] = v;
        }
        //#end
        //#repeat i 4
        {
            let i = {i}u;
            let e = tid + i * 256u;
            let kk = e / TN;
            let c = e % TN;
            var v = 0.0;
            if (k0 + kk < params.k && col0 + c < params.n) {
                v = f32(b[wid.z * params.b_batch + (k0 + kk) * params.n + col0 + c]);
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
        if (r < params.m && c < params.n) {
            let row = wid.z * params.m + r;
            out[row * params.n + c] = epilogue(acc[i * 4u + j], row, c);
        }
    }
    //#end
}
