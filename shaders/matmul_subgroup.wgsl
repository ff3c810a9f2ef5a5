// matmul_subgroup: out[M, N] = epilogue(A[M, K] @ B[K, N]), the variant for CPU adapters
// (lavapipe), where a workgroup of 8 invocations runs as one 8-wide SIMD thread and loads, not
// arithmetic, limit speed: every storage load is done lane by lane (../shared/GPU-NOTES.md).
//
// Bindings: 0 params (Meta); 1 a [rows at a_stride]; 2 b [K, N] read as vec4 (needs N % 4 == 0);
//           3 bias [N]; 4 scale [N]; 5 res [M, N]; 6 out [M, N]. Meta and epilogue as in
//           matmul_tiled.
// Grid: ceil(N / 32) * ceil(M / 24) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return), times the batch in z: item z reads A
// from element z * a_batch and B from z * b_batch, and writes rows z * M.. of out (and res).
// A workgroup is exactly one subgroup of 8 lanes (ops::matmul routes here only when the
// adapter's subgroup size is fixed at 8) and owns a 24-row x 32-column block of out: lane l
// holds the vec4 of columns 4l..4l+3 for all 24 rows (24 vec4 accumulators). Per 8 consecutive
// k, lane l loads A[row, k0 + l] for the 24 rows and B's 8 vec4 of its columns, and
// subgroupBroadcast (a register shuffle on llvmpipe) hands each A element to every lane: 32
// lane-loads per 24 x 32 x 8 multiply-adds, each input element loaded once per workgroup.
// Measured on lavapipe (Mesa 22.3, 2 cores), M = 1576, K = N = 768: 8 rows per workgroup
// 33 GFLOP/s, 16 rows 40, 24 rows 43-45 (more spill registers without gain). The rows are
// written out because a subgroupBroadcast lane must be a constant expression, and the same
// loop over local arrays measured 2x slower.
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
    has_bias: u32, has_scale: u32, has_res: u32, act: u32,
    a_batch: u32, b_batch: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const ROWS: u32 = 24u;
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

// `base` is the first output row of this batch item (z * M).
fn store_row(base: u32, row: u32, col: u32, acc: vec4<f32>) {
    if (row >= params.m) { return; }
    let r = base + row;
    let o = r * params.n + col;
    out[o] = epilogue(acc.x, r, col);
    out[o + 1u] = epilogue(acc.y, r, col + 1u);
    out[o + 2u] = epilogue(acc.z, r, col + 2u);
    out[o + 3u] = epilogue(acc.w, r, col + 3u);
}

@compute @workgroup_size(8)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
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

    let ra0 = a0 + min(row0 + 0u, last_row) * s;
    let ra1 = a0 + min(row0 + 1u, last_row) * s;
    let ra2 = a0 + min(row0 + 2u, last_row) * s;
    let ra3 = a0 + min(row0 + 3u, last_row) * s;
    let ra4 = a0 + min(row0 + 4u, last_row) * s;
    let ra5 = a0 + min(row0 + 5u, last_row) * s;
    let ra6 = a0 + min(row0 + 6u, last_row) * s;
    let ra7 = a0 + min(row0 + 7u, last_row) * s;
    let ra8 = a0 + min(row0 + 8u, last_row) * s;
    let ra9 = a0 + min(row0 + 9u, last_row) * s;
    let ra10 = a0 + min(row0 + 10u, last_row) * s;
    let ra11 = a0 + min(row0 + 11u, last_row) * s;
    let ra12 = a0 + min(row0 + 12u, last_row) * s;
    let ra13 = a0 + min(row0 + 13u, last_row) * s;
    let ra14 = a0 + min(row0 + 14u, last_row) * s;
    let ra15 = a0 + min(row0 + 15u, last_row) * s;
    let ra16 = a0 + min(row0 + 16u, last_row) * s;
    let ra17 = a0 + min(row0 + 17u, last_row) * s;
    let ra18 = a0 + min(row0 + 18u, last_row) * s;
    let ra19 = a0 + min(row0 + 19u, last_row) * s;
    let ra20 = a0 + min(row0 + 20u, last_row) * s;
    let ra21 = a0 + min(row0 + 21u, last_row) * s;
    let ra22 = a0 + min(row0 + 22u, last_row) * s;
    let ra23 = a0 + min(row0 + 23u, last_row) * s;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    var acc16 = vec4<f32>(0.0);
    var acc17 = vec4<f32>(0.0);
    var acc18 = vec4<f32>(0.0);
    var acc19 = vec4<f32>(0.0);
    var acc20 = vec4<f32>(0.0);
    var acc21 = vec4<f32>(0.0);
    var acc22 = vec4<f32>(0.0);
    var acc23 = vec4<f32>(0.0);

    let k_full = params.k & ~7u;
    for (var k0 = 0u; k0 < k_full; k0 += 8u) {
        let ka = k0 + lane;
        let x0 = a[ra0 + ka];
        let x1 = a[ra1 + ka];
        let x2 = a[ra2 + ka];
        let x3 = a[ra3 + ka];
        let x4 = a[ra4 + ka];
        let x5 = a[ra5 + ka];
        let x6 = a[ra6 + ka];
        let x7 = a[ra7 + ka];
        let x8 = a[ra8 + ka];
        let x9 = a[ra9 + ka];
        let x10 = a[ra10 + ka];
        let x11 = a[ra11 + ka];
        let x12 = a[ra12 + ka];
        let x13 = a[ra13 + ka];
        let x14 = a[ra14 + ka];
        let x15 = a[ra15 + ka];
        let x16 = a[ra16 + ka];
        let x17 = a[ra17 + ka];
        let x18 = a[ra18 + ka];
        let x19 = a[ra19 + ka];
        let x20 = a[ra20 + ka];
        let x21 = a[ra21 + ka];
        let x22 = a[ra22 + ka];
        let x23 = a[ra23 + ka];
        let bi = b0 + k0 * n4 + c4_load;
        let b0 = b[bi];
        let b1 = b[bi + n4];
        let b2 = b[bi + 2u * n4];
        let b3 = b[bi + 3u * n4];
        let b4 = b[bi + 4u * n4];
        let b5 = b[bi + 5u * n4];
        let b6 = b[bi + 6u * n4];
        let b7 = b[bi + 7u * n4];
        acc0 += row_block(x0, b0, b1, b2, b3, b4, b5, b6, b7);
        acc1 += row_block(x1, b0, b1, b2, b3, b4, b5, b6, b7);
        acc2 += row_block(x2, b0, b1, b2, b3, b4, b5, b6, b7);
        acc3 += row_block(x3, b0, b1, b2, b3, b4, b5, b6, b7);
        acc4 += row_block(x4, b0, b1, b2, b3, b4, b5, b6, b7);
        acc5 += row_block(x5, b0, b1, b2, b3, b4, b5, b6, b7);
        acc6 += row_block(x6, b0, b1, b2, b3, b4, b5, b6, b7);
        acc7 += row_block(x7, b0, b1, b2, b3, b4, b5, b6, b7);
        acc8 += row_block(x8, b0, b1, b2, b3, b4, b5, b6, b7);
        acc9 += row_block(x9, b0, b1, b2, b3, b4, b5, b6, b7);
        acc10 += row_block(x10, b0, b1, b2, b3, b4, b5, b6, b7);
        acc11 += row_block(x11, b0, b1, b2, b3, b4, b5, b6, b7);
        acc12 += row_block(x12, b0, b1, b2, b3, b4, b5, b6, b7);
        acc13 += row_block(x13, b0, b1, b2, b3, b4, b5, b6, b7);
        acc14 += row_block(x14, b0, b1, b2, b3, b4, b5, b6, b7);
        acc15 += row_block(x15, b0, b1, b2, b3, b4, b5, b6, b7);
        acc16 += row_block(x16, b0, b1, b2, b3, b4, b5, b6, b7);
        acc17 += row_block(x17, b0, b1, b2, b3, b4, b5, b6, b7);
        acc18 += row_block(x18, b0, b1, b2, b3, b4, b5, b6, b7);
        acc19 += row_block(x19, b0, b1, b2, b3, b4, b5, b6, b7);
        acc20 += row_block(x20, b0, b1, b2, b3, b4, b5, b6, b7);
        acc21 += row_block(x21, b0, b1, b2, b3, b4, b5, b6, b7);
        acc22 += row_block(x22, b0, b1, b2, b3, b4, b5, b6, b7);
        acc23 += row_block(x23, b0, b1, b2, b3, b4, b5, b6, b7);
    }
    // The last K % 8 steps: every lane reads the same A element itself (no broadcast).
    for (var k = k_full; k < params.k; k++) {
        let bv = b[b0 + k * n4 + c4_load];
        acc0 += a[ra0 + k] * bv;
        acc1 += a[ra1 + k] * bv;
        acc2 += a[ra2 + k] * bv;
        acc3 += a[ra3 + k] * bv;
        acc4 += a[ra4 + k] * bv;
        acc5 += a[ra5 + k] * bv;
        acc6 += a[ra6 + k] * bv;
        acc7 += a[ra7 + k] * bv;
        acc8 += a[ra8 + k] * bv;
        acc9 += a[ra9 + k] * bv;
        acc10 += a[ra10 + k] * bv;
        acc11 += a[ra11 + k] * bv;
        acc12 += a[ra12 + k] * bv;
        acc13 += a[ra13 + k] * bv;
        acc14 += a[ra14 + k] * bv;
        acc15 += a[ra15 + k] * bv;
        acc16 += a[ra16 + k] * bv;
        acc17 += a[ra17 + k] * bv;
        acc18 += a[ra18 + k] * bv;
        acc19 += a[ra19 + k] * bv;
        acc20 += a[ra20 + k] * bv;
        acc21 += a[ra21 + k] * bv;
        acc22 += a[ra22 + k] * bv;
        acc23 += a[ra23 + k] * bv;
    }

    if (c4 >= n4) { return; }
    let col = c4 * 4u;
    store_row(base, row0 + 0u, col, acc0);
    store_row(base, row0 + 1u, col, acc1);
    store_row(base, row0 + 2u, col, acc2);
    store_row(base, row0 + 3u, col, acc3);
    store_row(base, row0 + 4u, col, acc4);
    store_row(base, row0 + 5u, col, acc5);
    store_row(base, row0 + 6u, col, acc6);
    store_row(base, row0 + 7u, col, acc7);
    store_row(base, row0 + 8u, col, acc8);
    store_row(base, row0 + 9u, col, acc9);
    store_row(base, row0 + 10u, col, acc10);
    store_row(base, row0 + 11u, col, acc11);
    store_row(base, row0 + 12u, col, acc12);
    store_row(base, row0 + 13u, col, acc13);
    store_row(base, row0 + 14u, col, acc14);
    store_row(base, row0 + 15u, col, acc15);
    store_row(base, row0 + 16u, col, acc16);
    store_row(base, row0 + 17u, col, acc17);
    store_row(base, row0 + 18u, col, acc18);
    store_row(base, row0 + 19u, col, acc19);
    store_row(base, row0 + 20u, col, acc20);
    store_row(base, row0 + 21u, col, acc21);
    store_row(base, row0 + 22u, col, acc22);
    store_row(base, row0 + 23u, col, acc23);
}
