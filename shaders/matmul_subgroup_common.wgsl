// matmul_subgroup_common: out[M, N] = epilogue(A[M, K] @ B[K, N]), the variant for CPU adapters
// (lavapipe), where a workgroup of 8 invocations runs as one 8-wide SIMD thread and loads, not
// arithmetic, limit speed: every storage load is done lane by lane (../shared/GPU-NOTES.md).
//
// The body shared by `matmul_subgroup` and `matmul_texture`: their preludes
// subgroup_loads_buffer.wgsl and subgroup_loads_texture.wgsl declare bindings 1 and 2 and
// define `load_a` (A's element i, counting from A's first element), `load_b` (B's vec4 i) and
// `load_k_block`; each kernel file has an entry point that calls `matmul_block`.
//
// Bindings: 0 params (Meta); 1 A [rows at a_stride]; 2 B [K, N] read as vec4 (needs N % 4 == 0);
//           3 bias [N]; 4 scale [N]; 5 res [M, N]; 6 out [M, N], the last four as vec4
//           (epilogue_vec4.wgsl). Meta and epilogue as in matmul_tiled.
// Grid: ceil(N / 64) * ceil(M / 40) workgroups in any grid shape (linear index
// wid.x + wid.y * nwg.x; workgroups past the end return), times the batch in z: item z reads A
// from element z * a_batch and B from z * b_batch, and writes rows z * M.. of out (and res).
// A workgroup is exactly one subgroup of 8 lanes (ops::matmul routes here only when the
// adapter's subgroup size is fixed at 8) and owns a 40-row x 64-column block of out: lane l
// holds two vec4 of columns, 4l..4l+3 ("lo") and 32+4l..32+4l+3 ("hi"), for all 40 rows (80
// vec4 accumulators). Per 8 consecutive k, lane l loads A[row, k0 + l] for the 40 rows and B's
// 16 vec4 of its columns, and subgroupBroadcast (a register shuffle on llvmpipe) hands each A
// element to every lane: 56 lane-loads per 40 x 64 x 8 multiply-adds, each input element
// loaded once per workgroup.
// ops::SUBGROUP_ROWS and ops::SUBGROUP_COLS must equal ROWS and COLS (a unit test checks): the
// grid is exact, because on lavapipe a surplus workgroup runs the whole kernel masked off.
// Measured on lavapipe (Mesa 22.3, 2-core Xeon), M = 1576, K = 768, N = 768 / 3072 GFLOP/s,
// benches/matmul: one vec4 per lane (32 columns) with 16 rows 32 / 22, 24 rows 35 / 27, 32 rows
// 36-38 / 30-32, 48 rows 40 / 33 (a later machine: 45.8 / 41.7), 64 rows 40 / 34; two vec4 per
// lane (64 columns, half the A loads per multiply-add) on that later machine with 16 rows
// 41.6 / 38.7, 24 rows 45-49 / 44-45, 32 rows 50-55 / 45-48, 40 rows 55-56 / 49-50, 48 rows
// 45 / 40 (register spills). The rows are written out (//#repeat, expanded by the shader
// registry) because a subgroupBroadcast lane must be a constant expression, and the same loop
// over a private array measured 2x slower.
// Workgroups walk panels of PANEL column blocks, rows fastest within a panel, so that a panel
// of B (K x 32 * PANEL floats) stays in cache while every row block passes over it
// (N = 3072, 32-column blocks: 15 GFLOP/s with one column block per panel, 21 with 4).
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
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> scale: array<vec4<f32>>;
// Binding 5, res: the prelude residual_buffer.wgsl or residual_texture.wgsl.
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;

const ROWS: u32 = 40u;
// Output columns per workgroup: two vec4 per lane.
const COLS: u32 = 64u;
// Column blocks (of 64 columns) per panel of the workgroup order; a tuning knob.
override PANEL: u32 = 4u;

// `base` is the first output row of this batch item (z * M); `c4` the vec4 column.
fn store_row(base: u32, row: u32, c4: u32, acc: vec4<f32>, t: Cols4) {
    if (row >= params.m) { return; }
    let r = base + row;
    out[r * (params.n / 4u) + c4] = epilogue4(acc, r, c4, t);
}

// The whole kernel for workgroup `wid` of `nwg` (uniform) and subgroup lane `lane`.
fn matmul_block(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) {
    epilogue_bindings();
    let n4 = params.n / 4u;
    let col_groups = (params.n + COLS - 1u) / COLS;
    let row_groups = (params.m + ROWS - 1u) / ROWS;
    let group = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so the subgroup stays whole for the broadcasts below.
    if (group >= col_groups * row_groups) { return; }
    let panel = group / (PANEL * row_groups);
    let within = group % (PANEL * row_groups);
    let width = min(PANEL, col_groups - panel * PANEL);
    let row0 = (within / width) * ROWS;
    // This lane's two vec4 columns, and the ones it loads (clamped into range).
    let c4_lo = (panel * PANEL + within % width) * (COLS / 4u) + lane;
    let c4_hi = c4_lo + 8u;
    let load_lo = min(c4_lo, n4 - 1u);
    let load_hi = min(c4_hi, n4 - 1u);
    let last_row = params.m - 1u;
    let s = params.a_stride;
    // Batch item wid.z: A and B start a_batch and b_batch elements further, out at row z * M.
    let a_item = wid.z * params.a_batch;
    let b_item = wid.z * (params.b_batch / 4u);
    let base = wid.z * params.m;

    // The start of each row of A (rows past the end clamped to the last) and its accumulators.
    //#repeat r 40
    let ra{r} = a_item + min(row0 + {r}u, last_row) * s;
    var lo{r} = vec4<f32>(0.0);
    var hi{r} = vec4<f32>(0.0);
    //#end

    let k_full = params.k & ~7u;
    for (var k0 = 0u; k0 < k_full; k0 += 8u) {
        let ka = k0 + lane;
        //#repeat r 40
        let x{r} = load_a(ra{r} + ka);
        //#end
        let bl = load_k_block(b_item + k0 * n4 + load_lo, n4);
        let bh = load_k_block(b_item + k0 * n4 + load_hi, n4);
        //#repeat r 40
        lo{r} += row_block(x{r}, bl);
        hi{r} += row_block(x{r}, bh);
        //#end
    }
    // The last K % 8 steps: every lane reads the same A element itself (no broadcast).
    for (var k = k_full; k < params.k; k++) {
        let bv_lo = load_b(b_item + k * n4 + load_lo);
        let bv_hi = load_b(b_item + k * n4 + load_hi);
        //#repeat r 40
        let y{r} = load_a(ra{r} + k);
        lo{r} += y{r} * bv_lo;
        hi{r} += y{r} * bv_hi;
        //#end
    }

    if (c4_lo >= n4) { return; }
    let t_lo = cols4(c4_lo);
    //#repeat r 40
    store_row(base, row0 + {r}u, c4_lo, lo{r}, t_lo);
    //#end
    if (c4_hi >= n4) { return; }
    let t_hi = cols4(c4_hi);
    //#repeat r 40
    store_row(base, row0 + {r}u, c4_hi, hi{r}, t_hi);
    //#end
}
