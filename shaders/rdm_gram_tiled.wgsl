// rdm_gram_tiled: the same inner products as rdm_gram_subgroup (see there for the definition,
// the parameters and the shifts), for real GPUs and for any width: workgroup-memory tiles.
//
//   out[a_first + r, b_row0 + j] = sum_k (a[a_first + r, k] - sa_r) * (b[j, k] - sb_j)
//
// Bindings: 0 params; 1 a [*, width]; 2 b [b_rows, width]; 3 stats [capacity] vec4<f32>;
//           4 out [splits, split_stride / stride, stride].
// Split K as in rdm_gram_subgroup (split_len floats, a multiple of 32, per split).
// Grid: splits * ceil(rows / 16) * ceil((j1 - j0) / 64) workgroups in any shape (linear index
// wid.x + wid.y * nwg.x, split = index / tiles), 16 x 16 invocations. A workgroup owns 16 rows
// x 64 stored rows; invocation (tx, ty) computes row ty against stored rows 4tx..4tx+3. K
// advances in tiles of 32 staged (shifted, zero past the end) in workgroup memory. Every entry
// is one dot product in a fixed order whichever tile computes it.
// Accuracy: f32 runs of 512 products (16 tiles) added to a running f32 total, as in the
// subgroup variant.

struct Params {
    width: u32, rows: u32, a_first: u32, a_image0: u32,
    b_row0: u32, b_rows: u32, j0: u32, j1: u32,
    stride: u32, use_shift: u32, row_offset: u32, capacity: u32,
    split_len: u32, splits: u32, split_stride: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const TM: u32 = 16u;
const TN: u32 = 64u;
const TK: u32 = 32u;
const RUN_TILES: u32 = 16u;

var<workgroup> a_tile: array<array<f32, 33>, TM>;
var<workgroup> b_tile: array<array<f32, 33>, TN>;
var<workgroup> a_shift: array<f32, TM>;
var<workgroup> b_shift: array<f32, TN>;

fn shift_of(index: u32) -> f32 {
    if (params.use_shift == 0u) { return 0.0; }
    return stats[min(index, params.capacity - 1u)].x;
}

@compute @workgroup_size(16, 16)
fn rdm_gram_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                  @builtin(local_invocation_index) li: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let col_groups = (params.j1 - params.j0 + TN - 1u) / TN;
    let row_groups = (params.rows + TM - 1u) / TM;
    let tiles = col_groups * row_groups;
    let id = wid.x + wid.y * nwg.x;
    // Uniform per workgroup: every invocation reaches the barriers or none does.
    if (id >= tiles * params.splits) { return; }
    let split = id / tiles;
    let group = id % tiles;
    let row0 = (group / col_groups) * TM;
    let jb = params.j0 + (group % col_groups) * TN;

    if (li < TM) { a_shift[li] = shift_of(params.a_image0 + min(row0 + li, params.rows - 1u)); }
    if (li < TN) {
        b_shift[li] = shift_of(params.b_row0 + min(jb + li, params.j1 - 1u) - params.row_offset);
    }
    workgroupBarrier();

    let w = params.width;
    let k_begin = split * params.split_len;
    let k_stop = min(k_begin + params.split_len, w);
    var total = vec4<f32>(0.0);
    var run = vec4<f32>(0.0);
    var done = 0u;
    for (var k0 = k_begin; k0 < k_stop; k0 += TK) {
        // Stage A: 16 x 32 = 2 loads per invocation; B: 64 x 32 = 8.
        for (var e = li; e < TM * TK; e += 256u) {
            let rr = e / TK;
            let kk = e % TK;
            let r = params.a_first + min(row0 + rr, params.rows - 1u);
            var v = 0.0;
            if (k0 + kk < k_stop) { v = a[r * w + k0 + kk] - a_shift[rr]; }
            a_tile[rr][kk] = v;
        }
        for (var e = li; e < TN * TK; e += 256u) {
            let jj = e / TK;
            let kk = e % TK;
            let j = min(jb + jj, params.j1 - 1u);
            var v = 0.0;
            if (k0 + kk < k_stop) { v = b[j * w + k0 + kk] - b_shift[jj]; }
            b_tile[jj][kk] = v;
        }
        workgroupBarrier();
        let bj = lid.x * 4u;
        for (var kk = 0u; kk < TK; kk++) {
            let x = a_tile[lid.y][kk];
            run += x * vec4<f32>(b_tile[bj][kk], b_tile[bj + 1u][kk], b_tile[bj + 2u][kk], b_tile[bj + 3u][kk]);
        }
        workgroupBarrier();
        done += 1u;
        if (done == RUN_TILES) { total += run; run = vec4<f32>(0.0); done = 0u; }
    }
    total += run;

    let r = row0 + lid.y;
    if (r >= params.rows) { return; }
    for (var c = 0u; c < 4u; c++) {
        let j = jb + lid.x * 4u + c;
        if (j < params.j1) {
            out[split * params.split_stride + (params.a_first + r) * params.stride
                + params.b_row0 + j] = total[c];
        }
    }
}
