// rdm_gram_subgroup: inner products of a block of stored rows with stored rows, the variant for
// CPU adapters (lavapipe), where a workgroup of 8 invocations runs as one 8-wide SIMD thread and
// loads, not arithmetic, limit speed (../shared/GPU-NOTES.md).
//
//   out[a_first + r, b_row0 + j] = sum_k (a[a_first + r, k] - sa_r) * (b[j, k] - sb_j)
//
// for the rows r < rows of the block buffer `a` from a_first, and the rows j in [j0, j1) of this
// store buffer (b_row0 is the global store index of its row 0). With use_shift,
// sa_r = stats[a_image0 + r].x and sb_j = stats[b_row0 + j - row_offset].x (the f32 means from
// rdm_rowstats), so the products are of nearly centred vectors and the Pearson covariances
// computed from them on the CPU do not cancel; without it (sketches) both shifts are 0.
// Every entry is one dot product in a fixed order whichever tile computes it, so entry (i, j)
// of one block equals (j, i) of another bit for bit (the host relies on it for symmetric RDMs).
//
// Bindings: 0 params; 1 a [*, width] as vec4; 2 b [b_rows, width] as vec4 (width % 4 == 0);
//           3 stats [capacity] vec4<f32>; 4 out [splits, split_stride / stride, stride].
// Split K: the width is cut into `splits` ranges of split_len vec4s; split s writes its partial
// sums to out[s, ...] and the host adds the splits. The host keeps split_len small enough
// that an invocation runs fewer than 65,535 loop iterations in all (llvmpipe silently ends
// every loop of an invocation beyond that: see src/stats/tap.rs); splits also give wide rows
// more workgroups.
// Grid: splits * ceil(rows / 8) * ceil((j1 - j0) / 32) workgroups in any shape (linear index
// wid.x + wid.y * nwg.x, split = index / tiles). A workgroup is exactly one subgroup of 8 lanes
// (the host only routes here when the adapter's subgroup size is fixed at 8) and owns 8 rows x
// 32 stored rows: lane l loads row l's vec4 and the vec4s of stored rows 4l..4l+3 at the same
// k, and subgroupBroadcast hands every lane each row's vec4: 5 loads per 128 multiply-adds.
// Reference: the NT case of the register-blocked GEMM micro-kernel (BLIS).
//
// Accuracy: products are summed in f32 runs of 512 (128 vec4 steps), each run added to a
// running f32 total per split (kept in `out` itself), the splits added in f64 by the host, so
// the rounding error is about (sqrt(512) + sqrt(split_len / 128)) ulp of the sum of |products|
// for random-signed errors: ~1e-6 relative for width 600,000.
// Load indices are clamped into the bound rows, so lanes past an edge compute on valid data
// and skip their stores.

struct Params {
    width4: u32, rows: u32, a_first: u32, a_image0: u32,
    b_row0: u32, b_rows: u32, j0: u32, j1: u32,
    stride: u32, use_shift: u32, row_offset: u32, capacity: u32,
    split_len: u32, splits: u32, split_stride: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const RUN4: u32 = 128u;

fn row4(x: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(dot(x, b0), dot(x, b1), dot(x, b2), dot(x, b3));
}

fn shift_of(index: u32) -> f32 {
    if (params.use_shift == 0u) { return 0.0; }
    return stats[min(index, params.capacity - 1u)].x;
}

@compute @workgroup_size(8)
fn rdm_gram_subgroup(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_invocation_id) lane: u32) {
    let col_groups = (params.j1 - params.j0 + 31u) / 32u;
    let row_groups = (params.rows + 7u) / 8u;
    let tiles = col_groups * row_groups;
    let id = wid.x + wid.y * nwg.x;
    // The test is uniform across the workgroup, so the subgroup stays whole.
    if (id >= tiles * params.splits) { return; }
    let split = id / tiles;
    let group = id % tiles;
    let row0 = (group / col_groups) * 8u;
    let jb = params.j0 + (group % col_groups) * 32u;

    let w4 = params.width4;
    let rr = min(row0 + lane, params.rows - 1u);
    let ra = params.a_first + rr;
    let sa = vec4<f32>(shift_of(params.a_image0 + rr));
    let last = params.j1 - 1u;
    let j0 = min(jb + 4u * lane, last);
    let j1 = min(jb + 4u * lane + 1u, last);
    let j2 = min(jb + 4u * lane + 2u, last);
    let j3 = min(jb + 4u * lane + 3u, last);
    let s0 = vec4<f32>(shift_of(params.b_row0 + j0 - params.row_offset));
    let s1 = vec4<f32>(shift_of(params.b_row0 + j1 - params.row_offset));
    let s2 = vec4<f32>(shift_of(params.b_row0 + j2 - params.row_offset));
    let s3 = vec4<f32>(shift_of(params.b_row0 + j3 - params.row_offset));

    let col = jb + 4u * lane;
    let k_begin = split * params.split_len;
    let k_stop = min(k_begin + params.split_len, w4);
    for (var k0 = k_begin; k0 < k_stop; k0 += RUN4) {
        var u0 = vec4<f32>(0.0); var u1 = vec4<f32>(0.0); var u2 = vec4<f32>(0.0); var u3 = vec4<f32>(0.0);
        var u4 = vec4<f32>(0.0); var u5 = vec4<f32>(0.0); var u6 = vec4<f32>(0.0); var u7 = vec4<f32>(0.0);
        let k_end = min(k0 + RUN4, k_stop);
        for (var k = k0; k < k_end; k++) {
            let x = a[ra * w4 + k] - sa;
            let b0 = b[j0 * w4 + k] - s0;
            let b1 = b[j1 * w4 + k] - s1;
            let b2 = b[j2 * w4 + k] - s2;
            let b3 = b[j3 * w4 + k] - s3;
            u0 += row4(subgroupBroadcast(x, 0u), b0, b1, b2, b3);
            u1 += row4(subgroupBroadcast(x, 1u), b0, b1, b2, b3);
            u2 += row4(subgroupBroadcast(x, 2u), b0, b1, b2, b3);
            u3 += row4(subgroupBroadcast(x, 3u), b0, b1, b2, b3);
            u4 += row4(subgroupBroadcast(x, 4u), b0, b1, b2, b3);
            u5 += row4(subgroupBroadcast(x, 5u), b0, b1, b2, b3);
            u6 += row4(subgroupBroadcast(x, 6u), b0, b1, b2, b3);
            u7 += row4(subgroupBroadcast(x, 7u), b0, b1, b2, b3);
        }
        // The running totals live in `out` (each element is this lane's alone): keeping them
        // in registers too would double the accumulators and spill on CPU adapters.
        let first = k0 == k_begin;
        add_row(split, row0, col, u0, first);
        add_row(split, row0 + 1u, col, u1, first);
        add_row(split, row0 + 2u, col, u2, first);
        add_row(split, row0 + 3u, col, u3, first);
        add_row(split, row0 + 4u, col, u4, first);
        add_row(split, row0 + 5u, col, u5, first);
        add_row(split, row0 + 6u, col, u6, first);
        add_row(split, row0 + 7u, col, u7, first);
    }
}

fn add_row(split: u32, r: u32, j: u32, v: vec4<f32>, first: bool) {
    if (r >= params.rows) { return; }
    for (var c = 0u; c < 4u; c++) {
        if (j + c < params.j1) {
            let o = split * params.split_stride + (params.a_first + r) * params.stride
                + params.b_row0 + j + c;
            if (first) { out[o] = v[c]; } else { out[o] += v[c]; }
        }
    }
}
