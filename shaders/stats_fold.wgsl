// stats_fold: folds the per-workgroup rows that stats_tap wrote for one batch into the tap's
// running totals, which live on the GPU across batches: integer words (histogram bins and
// counters, each < 2^32 within a batch, see src/stats/tap.rs) are summed over the rows and
// added to 64-bit totals kept as (lo, hi) u32 pairs with carry (SHADER_INT64 is not
// guaranteed); float sums are added as double-f32 (hi, lo) pairs (TwoSum, with `keep` hiding
// values from compiler simplification as in stats_tap_common.wgsl); min and max are combined;
// the image count grows by this batch's; the first batch's moment
// shifts are stored so later batches use the same one.
//
// Bindings: 0 params (Meta); 1 partial [groups, row_words] u32 (read); 2 batch [4 + B] u32:
//   n_valid at 0, labels from 4 (read); 3 state u32 (read_write), laid out as
//   [int_words (lo, hi) pairs | float_base: s1 hi, s1 lo, s2 hi, s2 lo, min, max, h1 hi, h1 lo,
//    h2 hi, h2 lo, shift, hoyer shift, shifts_set, images (lo, hi)].
// A row is [int_words integers | s1 hi, s1 lo, s2 hi, s2 lo, min, max, h1 hi, h1 lo, h2 hi,
//   h2 lo, shift, hoyer shift] (stats_tap_common.wgsl).
// Grid: 1 workgroup of 64; lanes stride over the integer words, lane 0 folds the rest. Loop
// iterations per invocation: ceil(int_words / 64) * (groups + 1) + groups, kept below
// llvmpipe's silent cap of 65,535 by src/stats/tap.rs.

struct Meta {
    groups: u32, row_words: u32, int_words: u32, float_base: u32,
    opaque: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> partial: array<u32>;
@group(0) @binding(2) var<storage, read> batch: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;

fn keep(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ params.opaque); }

fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let ks = keep(s);
    let bb = ks - a;
    let e = (a - (ks - bb)) + (b - bb);
    return vec2<f32>(s, e);
}

fn df_add(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    let s = two_sum(x.x, y.x);
    let lo = s.y + x.y + y.y;
    let hi = s.x + lo;
    return vec2<f32>(hi, lo - (keep(hi) - s.x));
}

fn add64(i: u32, v: u32) {
    let lo = state[i];
    let s = lo + v;
    state[i] = s;
    if (s < lo) {
        state[i + 1u] += 1u;
    }
}

fn pair(i: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(state[i]), bitcast<f32>(state[i + 1u]));
}

fn row_pair(i: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(partial[i]), bitcast<f32>(partial[i + 1u]));
}

fn store_pair(i: u32, v: vec2<f32>) {
    state[i] = bitcast<u32>(v.x);
    state[i + 1u] = bitcast<u32>(v.y);
}

@compute @workgroup_size(64)
fn stats_fold(@builtin(local_invocation_index) lane: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let w = (wid.x + wid.y * nwg.x) * 64u + lane;
    if (w < params.int_words) {
        var s = 0u;
        var idx = w;
        let end = params.groups * params.row_words;
        for (; idx < end; idx += params.row_words) {
            s += partial[idx];
        }
        add64(2u * w, s);
        return;
    }
    if (w != params.int_words) { return; }
    let f = params.float_base;
    var s1 = pair(f);
    var s2 = pair(f + 2u);
    var lo = bitcast<f32>(state[f + 4u]);
    var hi = bitcast<f32>(state[f + 5u]);
    var h1 = pair(f + 6u);
    var h2 = pair(f + 8u);
    for (var g = 0u; g < params.groups; g++) {
        let r = g * params.row_words + params.int_words;
        s1 = df_add(s1, row_pair(r));
        s2 = df_add(s2, row_pair(r + 2u));
        lo = min(lo, bitcast<f32>(partial[r + 4u]));
        hi = max(hi, bitcast<f32>(partial[r + 5u]));
        h1 = df_add(h1, row_pair(r + 6u));
        h2 = df_add(h2, row_pair(r + 8u));
    }
    store_pair(f, s1);
    store_pair(f + 2u, s2);
    state[f + 4u] = bitcast<u32>(lo);
    state[f + 5u] = bitcast<u32>(hi);
    store_pair(f + 6u, h1);
    store_pair(f + 8u, h2);
    if (state[f + 12u] == 0u) {
        state[f + 10u] = partial[params.int_words + 10u];
        state[f + 11u] = partial[params.int_words + 11u];
        state[f + 12u] = 1u;
    }
    add64(f + 13u, batch[0]);
}
