// rdm_rowstats_common: per image of a batch, the shift `a` of its flat feature row and the
// centred sums t, u (rdm_rows.wgsl), in one pass, stored as stats[n0 + r] = (a, t, u, 0) for the
// batch's valid rows r < nb (cursor = (n0, nb), written by the host before each batch). Used in
// exact mode; in sketch mode rdm_sketch computes the same while it projects the row.
//
// Bindings: 0 params; 1 x [rows, D] (rows_vec4.wgsl or rows_scalar.wgsl); 2 cursor [4] u32;
//           3 stats [capacity] vec4<f32>.
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation l reads quads l, l + 256, ... of the row, and lanes < D % 4 one of the
// last entries. Loop iterations per invocation: ceil(D / 1024).

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
    for (var i = base + 4u * lane; i < end; i += 4u * WG) {
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
