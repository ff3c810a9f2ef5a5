// rdm_rowstats_common: per image of a batch, the shift `a` of its flat feature row and the
// centred sums t, u (rdm_rows.wgsl), in one pass, stored as stats[n0 + r] = (a, t, u, 0) for the
// batch's valid rows r < nb (cursor = (n0, nb), written by the host before each batch). Used in
// exact mode; in sketch mode rdm_sketch computes the same while it projects the row.
//
// Bindings: 0 params; 1 x [rows, D] (rows_vec4.wgsl or rows_scalar.wgsl); 2 cursor [4] u32;
//           3 stats [capacity] vec4<f32>.
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation l reads the l-th run of ceil(D / 1024) consecutive quads of the row,
// and lanes < D % 4 one of the last entries. Loop iterations per invocation: ceil(D / 1024).
// (Quads l, l + 256, ... instead made every invocation step 4 KB per load; llvmpipe runs the
// SIMD threads of a workgroup one after the other, so each walked the whole row 128 bytes per
// 4 KB page, which the hardware prefetcher does not follow: 47 -> 28 ms per ResNet-50 layer1
// batch of 8 on lavapipe.)

const WG: u32 = 256u;

struct Params { d: u32, rows: u32, capacity: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>;

fn row_stats(lane: u32, r: u32) {
    let n0 = cursor[0];
    let nb = cursor[1];
    // Uniform per workgroup: the barriers below are reached by all or none.
    if (r >= params.rows || r >= nb || n0 + r >= params.capacity) { return; }
    let d = params.d;
    let base = r * d;
    let a = row_shift(lane, base, d);

    var sums: Centred;
    let end = base + (d / 4u) * 4u;
    // Each invocation reads its own run of consecutive quads: see the header.
    let per = (d / 4u + WG - 1u) / WG;
    let first = min(base + 4u * per * lane, end);
    let last = min(first + 4u * per, end);
    for (var i = first; i < last; i += 4u) {
        centred_add(&sums, load4(i, 4u) - vec4<f32>(a));
    }
    if (lane < d % 4u) {
        centred_add(&sums, vec4<f32>(load1(end + lane) - a, 0.0, 0.0, 0.0));
    }
    let tu = centred_total(lane, sums);
    if (lane == 0u) {
        stats[n0 + r] = vec4<f32>(a, tu.x, tu.y, 0.0);
    }
}
