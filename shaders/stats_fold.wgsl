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
// Grid: ceil((int_words + 7) / 64) workgroups of 64 lanes: lane w < int_words folds integer
// word w, lanes int_words + 0..6 fold one float quantity each. Loop iterations per invocation:
// `groups`, kept below llvmpipe's silent cap of 65,535 by src/stats/tap.rs.
// Every loop walks a row index (r += row_words) instead of counting rows: on Mesa 22.3's
// lavapipe the counted form `for (var g = 0u; g < params.groups; g++)` in this kernel leaked
// about 0.45 MB of host memory per dispatch (measured, README "Notes on software adapters").

struct Meta {
    groups: u32, row_words: u32, int_words: u32, float_base: u32,
    opaque: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> partial: array<u32>;
@group(0) @binding(2) var<storage, read> batch: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;

// keep, two_sum and df_add: the prelude compensated.wgsl.

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
    // Lanes int_words + q fold one float quantity each: q 0, 1, 4, 5 the double-f32 sums at
    // float offsets 0, 2, 6, 8; q 2 and 3 the min and max; q 6 the shifts and the image count.
    if (w >= params.int_words + 7u) { return; }
    let q = w - params.int_words;
    let f = params.float_base;
    if (q == 2u || q == 3u) {
        var m = bitcast<f32>(state[f + q + 2u]);
        let end = params.groups * params.row_words;
        for (var r = params.int_words + q + 2u; r < end; r += params.row_words) {
            let v = bitcast<f32>(partial[r]);
            m = select(max(m, v), min(m, v), q == 2u);
        }
        state[f + q + 2u] = bitcast<u32>(m);
    } else if (q < 6u) {
        let o = select(select(6u, 8u, q == 5u), q * 2u, q < 2u);
        var acc = pair(f + o);
        let end = params.groups * params.row_words;
        for (var r = params.int_words + o; r < end; r += params.row_words) {
            acc = df_add(acc, row_pair(r));
        }
        store_pair(f + o, acc);
    } else {
        if (state[f + 12u] == 0u) {
            state[f + 10u] = partial[params.int_words + 10u];
            state[f + 11u] = partial[params.int_words + 11u];
            state[f + 12u] = 1u;
        }
        add64(f + 13u, batch[0]);
    }
}
