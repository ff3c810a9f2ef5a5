// matmul_subgroup: out[M, N] = epilogue(A[M, K] @ B[K, N]), the variant for CPU adapters
// (lavapipe), where a workgroup of 8 invocations runs as one 8-wide SIMD thread and loads, not
// arithmetic, limit speed: every storage load is done lane by lane (../shared/GPU-NOTES.md).
//
// Bindings: 0 params (Meta); 1 a [rows at a_stride]; 2 b [K, N] read as vec4 (needs N % 4 == 0);
//           3 bias [N]; 4 scale [N]; 5 res [M, N]; 6 out [M, N], the last four as vec4
//           (epilogue_vec4.wgsl). Meta and epilogue as in matmul_tiled.
// Grid: ceil(N / 32) * ceil(M / 48) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return), times the batch in z: item z reads A
// from element z * a_batch and B from z * b_batch, and writes rows z * M.. of out (and res).
// A workgroup is exactly one subgroup of 8 lanes (ops::matmul routes here only when the
// adapter's subgroup size is fixed at 8) and owns a 48-row x 32-column block of out: lane l
// holds the vec4 of columns 4l..4l+3 for all 48 rows (48 vec4 accumulators). Per 8 consecutive
// k, lane l loads A[row, k0 + l] for the 48 rows and B's 8 vec4 of its columns, and
// subgroupBroadcast (a register shuffle on llvmpipe) hands each A element to every lane: 80
// lane-loads per 48 x 32 x 8 multiply-adds, each input element loaded once per workgroup.
// ops::SUBGROUP_ROWS must equal ROWS (a unit test checks): the grid is exact, because on
// lavapipe a surplus workgroup runs the whole kernel masked off.
// Measured on lavapipe (Mesa 22.3, 2-core Xeon, scratch harness), M = 1576, K = 768, N = 768 /
// 3072 GFLOP/s: 16 rows 32 / 22, 24 rows 35 / 27, 32 rows 36-38 / 30-32, 48 rows 40 / 33,
// 64 rows 40 / 34 (longer compile); an earlier 2-core Zen 5 machine gave 8 rows 33, 16 rows 40,
// 24 rows 43-45 for N = 768. The rows are written out (//#repeat, expanded by the shader
// registry) because a subgroupBroadcast lane must be a constant expression, and the same loop
// over a private array measured 2x slower.
// Workgroups walk panels of PANEL column blocks, rows fastest within a panel, so that a panel
// of B (K x 32 * PANEL floats) stays in cache while every row block passes over it
// (N = 3072: 15 GFLOP/s with one column block per panel, 21 with 4).
// Reference: the register-blocked outer-product GEMM micro-kernel (BLIS), with the subgroup
// standing in for the SIMD register.
//
// Every load index is clamped into range (rows to M - 1, vec4 columns to N/4 - 1, k < K):
// lanes past the edge of the matrix compute on valid data and only skip their stores, so no
// access is out of bounds for any M >= 1, N >= 4 with N % 4 == 0, K >= 0 that ops::matmul
// accepts (it checks the lengths of A, B, bias, scale, res and out against these indices).

struct Meta {
    m: u32, n: u32, k: u32, a_stride: u32,
    a_batch: u32, b_batch: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> a: array<f32>;
// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;
@group(0) @binding(2) var<storage, read> b: array<vec4<W>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> res: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

const ROWS: u32 = 48u;
// Column blocks (of 32 columns) per panel of the workgroup order; a tuning knob.
override PANEL: u32 = 4u;

// One row's contribution of an 8-deep k block: x (lane i's value is A[row, k0 + i]) times
// B[k0 + i] summed over i.
fn row_block(x: f32, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
             b4: vec4<f32>, b5: vec4<f32>, b6: vec4<f32>, b7: vec4<f32>) -> vec4<f32> {
    return subgroupBroadcast(x, 0u) * b0 + subgroupBroadcast(x, 1u) * b1
         + subgroupBroadcast(x, 2u) * b2 + subgroupBroadcast(x, 3u) * b3
         + subgroupBroadcast(x, 4u) * b4 + subgroupBroadcast(x, 5u) * b5
         + subgroupBroadcast(x, 6u) * b6 + subgroupBroadcast(x, 7u) * b7;
}

// `base` is the first output row of this batch item (z * M); `c4` the vec4 column.
fn store_row(base: u32, row: u32, c4: u32, acc: vec4<f32>) {
    if (row >= params.m) { return; }
    let r = base + row;
    out[r * (params.n / 4u) + c4] = epilogue4(acc, r, c4);
}

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    epilogue_bindings();
    let n4 = params.n / 4u;
    let col_groups = (n4 + 7u) / 8u;
    let row_groups = (params.m + ROWS - 1u) / ROWS;
    let group = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the subgroup stays whole for the broadcasts below.
    if (group >= col_groups * row_groups) { return; }
    let panel = group / (PANEL * row_groups);
    let within = group % (PANEL * row_groups);
    let width = min(PANEL, col_groups - panel * PANEL);
    let row0 = (within / width) * ROWS;
    let c4 = (panel * PANEL + within % width) * 8u + lane;
    let c4_load = min(c4, n4 - 1u);
    let last_row = params.m - 1u;
    let s = params.a_stride;
    // Batch item wid.z: A and B start a_batch and b_batch elements further, out at row z * M.
    let a0 = wid.z * params.a_batch;
    let b0 = wid.z * (params.b_batch / 4u);
    let base = wid.z * params.m;

    // The start of each row of A (rows past the end clamped to the last) and its accumulator.
    //#repeat r 48
    let ra{r} = a0 + min(row0 + {r}u, last_row) * s;
    var acc{r} = vec4<f32>(0.0);
    //#end

    let k_full = params.k & ~7u;
    for (var k0 = 0u; k0 < k_full; k0 += 8u) {
        let ka = k0 + lane;
        //#repeat r 48
        let x{r} = a[ra{r} + ka];
        //#end
        let bi = b0 + k0 * n4 + c4_load;
        let b0 = vec4<f32>(b[bi]);
        let b1 = vec4<f32>(b[bi + n4]);
        let b2 = vec4<f32>(b[bi + 2u * n4]);
        let b3 = vec4<f32>(b[bi + 3u * n4]);
        let b4 = vec4<f32>(b[bi + 4u * n4]);
        let b5 = vec4<f32>(b[bi + 5u * n4]);
        let b6 = vec4<f32>(b[bi + 6u * n4]);
        let b7 = vec4<f32>(b[bi + 7u * n4]);
        //#repeat r 48
        acc{r} += row_block(x{r}, b0, b1, b2, b3, b4, b5, b6, b7);
        //#end
    }
    // The last K % 8 steps: every lane reads the same A element itself (no broadcast).
    for (var k = k_full; k < params.k; k++) {
        let bv = vec4<f32>(b[b0 + k * n4 + c4_load]);
        //#repeat r 48
        acc{r} += a[ra{r} + k] * bv;
        //#end
    }

    if (c4 >= n4) { return; }
    //#repeat r 48
    store_row(base, row0 + {r}u, c4, acc{r});
    //#end
}
