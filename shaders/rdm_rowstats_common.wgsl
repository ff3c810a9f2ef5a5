// rdm_rowstats_common: per image of a batch, a shift `a` close to the mean of its flat feature
// vector x [D], then t = sum(x - a) and u = sum((x - a)^2) in one pass, stored as
// stats[n0 + r] = (a, t, u, 0) for the batch's valid rows r < nb (cursor = (n0, nb), written
// by the host before each batch). `a` is the mean of min(D, 256) entries spaced evenly over the
// row: the RDM finalisation (src/rdm/gram.rs, `GramStats`) centres with `a` and corrects exactly
// with t, so `a` only has to be close to the mean (it keeps u, and the products of shifted rows,
// free of the cancellation a large common offset would cause).
// The row is read by `load4` / `load1` from a prelude: rows_vec4.wgsl (rdm_rowstats, D % 4 == 0)
// or rows_scalar.wgsl (rdm_rowstats_scalar).
//
// Bindings: 0 params; 1 x [rows, D] (the prelude); 2 cursor [4] u32; 3 stats [capacity]
// vec4<f32>.
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation l reads quads l, l + 256, ... of the row, and lanes < D % 4 one of the
// last entries. Loop iterations per invocation: ceil(D / 1024). Accuracy: each component of an
// invocation's vec4 sums runs of 64 entries in f32, added to a running total; the workgroup adds
// the 256 totals pairwise, so the rounding error is about (sqrt(64) + sqrt(D / 65536) + 10) ulp
// of the sum of |terms|.

struct Params { d: u32, rows: u32, capacity: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>;

const WG: u32 = 256u;
const RUN: u32 = 64u;
var<workgroup> partial: array<vec2<f32>, WG>;

fn reduce2(lane: u32, v: vec2<f32>) -> vec2<f32> {
    partial[lane] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) { partial[lane] += partial[lane + s]; }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn row_stats(lane: u32, r: u32) {
    let n0 = cursor[0];
    let nb = cursor[1];
    // Uniform per workgroup: the barriers below are reached by all or none.
    if (r >= params.rows || r >= nb || n0 + r >= params.capacity) { return; }
    let d = params.d;
    let base = r * d;

    let samples = min(d, WG);
    var s = 0.0;
    if (lane < samples) { s = load1(base + lane * (d / samples)); }
    let a = reduce2(lane, vec2<f32>(s, 0.0)).x / f32(samples);
    let a4 = vec4<f32>(a);

    var t = vec4<f32>(0.0);
    var u = vec4<f32>(0.0);
    var run_t = vec4<f32>(0.0);
    var run_u = vec4<f32>(0.0);
    var count = 0u;
    let end = base + (d / 4u) * 4u;
    for (var i = base + 4u * lane; i < end; i += 4u * WG) {
        let y = load4(i, 4u) - a4;
        run_t += y;
        run_u += y * y;
        count += 1u;
        if (count == RUN) {
            t += run_t;
            u += run_u;
            run_t = vec4<f32>(0.0);
            run_u = vec4<f32>(0.0);
            count = 0u;
        }
    }
    t += run_t;
    u += run_u;
    var tail = vec2<f32>(0.0);
    if (lane < d % 4u) {
        let y = load1(end + lane) - a;
        tail = vec2<f32>(y, y * y);
    }
    let mine = vec2<f32>((t.x + t.y) + (t.z + t.w), (u.x + u.y) + (u.z + u.w)) + tail;
    let tu = reduce2(lane, mine);
    if (lane == 0u) {
        stats[n0 + r] = vec4<f32>(a, tu.x, tu.y, 0.0);
    }
}
