// rdm_rowstats: per image of a batch, the f32 mean `a` of its flat feature vector x [D], then
// t = sum(x - a) and u = sum((x - a)^2), stored as stats[n0 + r] = (a, t, u, 0) for the batch's
// valid rows r < nb (cursor = (n0, nb), written by the host before each batch).
// The RDM finalisation (src/rdm/mod.rs, `Gram`) centres with `a` and corrects exactly with t,
// so `a` only has to be close to the mean.
//
// Bindings: 0 params; 1 x [rows, D]; 2 cursor [4] u32; 3 stats [capacity] vec4<f32>.
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x), 256
// invocations. Accuracy: each invocation sums its strided entries in runs of 64 (an f32 run
// sum, then added to a running total) and the workgroup adds the 256 totals pairwise, so the
// rounding error is about (sqrt(64) + sqrt(D / 16384) + 8) ulp of the sum of |terms|.

struct Params { d: u32, rows: u32, capacity: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
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

@compute @workgroup_size(256)
fn rdm_rowstats(@builtin(local_invocation_index) lane: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    let n0 = cursor[0];
    let nb = cursor[1];
    // Uniform per workgroup: the barriers below are reached by all or none.
    if (r >= params.rows || r >= nb || n0 + r >= params.capacity) { return; }
    let base = r * params.d;

    var total = 0.0;
    var run = 0.0;
    var count = 0u;
    for (var c = lane; c < params.d; c += WG) {
        run += x[base + c];
        count += 1u;
        if (count == RUN) { total += run; run = 0.0; count = 0u; }
    }
    total += run;
    let a = reduce2(lane, vec2<f32>(total, 0.0)).x / f32(params.d);

    var totals = vec2<f32>(0.0);
    var runs = vec2<f32>(0.0);
    count = 0u;
    for (var c = lane; c < params.d; c += WG) {
        let y = x[base + c] - a;
        runs += vec2<f32>(y, y * y);
        count += 1u;
        if (count == RUN) { totals += runs; runs = vec2<f32>(0.0); count = 0u; }
    }
    totals += runs;
    let tu = reduce2(lane, totals);
    if (lane == 0u) {
        stats[n0 + r] = vec4<f32>(a, tu.x, tu.y, 0.0);
    }
}
