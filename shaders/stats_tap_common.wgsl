// stats_tap_common: the body shared by `stats_tap` (the tap read as vec4, C % 4 == 0),
// `stats_tap_texture` (the same from a texture copy of the tap) and `stats_tap_scalar` (any C);
// each of those files declares binding 1 and `load4` and `load1`, and has an entry point that
// calls `tap_stats` below. One pass over one batch of a tap [B, P, C]
// computes every per-batch partial the statistics need (src/stats/tap.rs folds them):
//   per (image, position chunk, channel): the count of active entries and the sum of values
//     (firing counts, "active in the image", pooled means);
//   per workgroup: the linear, positive-only and log2 histograms, counts of zeros, NaN, +Inf
//     and -Inf (counted as histogram words too, see below), the compensated sums of
//     (x - shift) and (x - shift)^2 over finite entries, min and max over finite entries, and
//     per-token Hoyer sparsity (its shifted sum and sum of squares, and the per-token values
//     themselves when `write_hoyer` is set).
// Definitions: ../shared/DESIGN.md "Statistic definitions"; CPU reference: src/stats/reference.rs.
//
// Bindings: 0 params (Meta); 1 tap [B, P, C] (declared by the including kernel);
//   2 batch [4 + B] u32: n_valid images at 0, labels from 4 (labels unused here);
//   3 edges f32: the linear histogram's B_h + 1 edges, then the positive histogram's B_p + 1;
//   4 state u32: the accumulators of src/stats/tap.rs (only the moment shifts are read here);
//   5 partial [groups, row_words] u32: one row per workgroup, written whole every batch;
//   6 item_counts [B * chunks, C] u32; 7 item_sums [B * chunks, C] f32;
//   8 hoyer_out [B, P] f32 (a dummy unless write_hoyer).
// Grid: `groups` workgroups (any grid shape, linear id wid.x + wid.y * nwg.x) of WG = 8
// invocations, persistent: workgroup g takes work items g, g + groups, ... where an item is
// (image, chunk of <= CHUNK positions), items = n_valid * chunks. Per item the workgroup walks
// the channels in blocks of 32 (lane l owns channels 4l..4l+3 of the block) and, per block, the
// chunk's positions, so per-channel counts and sums stay in registers.
//
// Why this shape (../shared/GPU-NOTES.md): on llvmpipe a workgroup of 8 is one SIMD thread and
// every load is done lane by lane, so the tap is read exactly once, as vec4 where possible, and
// everything is derived from that one load. Histograms cannot live in registers: each
// invocation counts into its own private array (`hist_words`, plain increments: on llvmpipe an
// atomic costs ~7 ns, a workgroup-memory increment ~4 ns, a private one ~2.4 ns, measured), and
// the arrays are added into workgroup memory, then the workgroup's row, once per dispatch, which
// is why workgroups are persistent and few on CPU adapters. (A real GPU would rather share
// histograms between many invocations; this kernel is shaped for CPU adapters and merely runs
// correctly elsewhere.)
//
// llvmpipe ends every loop of an invocation once the invocation has run 65,535 loop iterations
// in total (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS, one counter per function, never reset), and
// does so silently. So small fixed loops are unrolled, a position of a channel block costs one
// iteration, and the host (src/stats/tap.rs, `loop_safe_groups`) gives each workgroup few
// enough items to stay below the cap. Load indices advance by addition: an index recomputed as
// counter * stride + lane made each load about 30x slower on llvmpipe (measured in stats_fold).
//
// llvmpipe runs both sides of every branch under a lane mask (a branch skips nothing: histogram
// code behind a never-taken branch cost 5x the rest of the pass), so the loop over positions is
// branch-free: every entry makes exactly one histogram update, at the joint word of its
// linear, positive and log bins (src/stats/joint.rs; one increment instead of three took this
// kernel from 400 to 326 ms per ResNet-50 batch of 8 on lavapipe). Zeros, NaN, +Inf and -Inf
// go to four words of their own after the joint words, which become the row's first four
// counters (the host puts zeros and infinities into their bins), and idle lanes' entries to a
// discard word after those: one more select per entry instead of four vec4 counters (those
// cost 6% of this kernel on ResNet-50).
// The per-token Hoyer partials of a channel block accumulate in a private array indexed by
// the position (the same index in every lane, so no gather), copied once per item to workgroup
// memory for the cross-lane sum (kept in workgroup memory per block it cost 451 vs 400 ms).
// Bins are computed without loads where the edges allow, and are exact (src/stats/spec.rs),
// i.e. equal to comparisons with the f64 edges:
//   linear, width a power of two and lo a multiple of it (the default): floor(x * scale),
//     exact when the width is at most 1 (HIST_EXACT, the default), else checked against edges
//     rebuilt exactly in f32 as (lo_units + b) * width; otherwise (HIST_TABLE) the f32 edge
//     table, whose values make f32 comparisons equal the f64 ones;
//   positive, scale = bins / hi exact in f32: x * scale as an exact sum p + e of the rounded
//     product and its error, compared with the integers; the error by Fast2Sum when the scale
//     is two powers of two (POS_TWO_POWERS; the default 10 = 8 + 2), else by Dekker's product
//     (no FMA: llvmpipe does not fuse); otherwise (POS_TABLE) the edge table;
//   log: the exponent and mantissa bits of |x| against integer mantissa thresholds.
// Sums: x - shift as an exact pair, per-lane TwoSum accumulators, then double-f32 pairs; `keep`
// hides values behind the uniform's `opaque` (always 0) so that no compiler can simplify the
// compensation away (or contract it into an FMA).

struct Meta {
    positions: u32, channels: u32, chunk_len: u32, chunks: u32,
    groups: u32, row_words: u32, copy_words: u32, neg_base: u32,
    hist_bins: u32, pos_bins: u32, pred_abs: u32, write_hoyer: u32,
    threshold: f32, hist_lo: f32, hist_hi: f32, hist_scale: f32,
    hist_width: f32, hist_lo_units: i32, pos_hi: f32, pos_scale: f32,
    pos_scale_hi: f32, pos_scale_lo: f32, log_t1: u32, log_t2: u32,
    log_t3: u32, opaque: u32, sqrt_c: f32, shift_word: u32,
    lin_pos_min: u32, lin_neg_max: u32, _pad0: u32, _pad1: u32,
}

// The linear (positive) histogram's edges need the table: width not a power of two, or lo not
// a multiple of it (scale = bins / hi not exact in f32). Pipeline constants, so the unused path
// is compiled out.
override HIST_TABLE: bool = false;
override POS_TABLE: bool = false;
// The positive scale is pos_scale_hi + pos_scale_lo, both powers of two (src/stats/spec.rs,
// PosScale): the product's error takes five operations instead of Dekker's fourteen (on
// lavapipe ~1.3 of stats_tap's ~6.2 ns per entry went to Dekker's product; ResNet-50 batch 8,
// bench alternated twice: stats_tap_texture 454, 513 -> 432, 474 ms per batch).
override POS_TWO_POWERS: bool = false;
// The linear histogram's power-of-two width is at most 1, so x * scale never loses bits.
override HIST_EXACT: bool = false;

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(2) var<storage, read> batch: array<u32>;
@group(0) @binding(3) var<storage, read> edges: array<f32>;
@group(0) @binding(4) var<storage, read> state: array<u32>;
@group(0) @binding(5) var<storage, read_write> partial: array<u32>;
@group(0) @binding(6) var<storage, read_write> item_counts: array<u32>;
@group(0) @binding(7) var<storage, read_write> item_sums: array<f32>;
@group(0) @binding(8) var<storage, read_write> hoyer_out: array<f32>;

const WG: u32 = 8u;
// Positions per work item: the Hoyer scratch holds one (|x|_1, |x|_2^2) partial per position and
// lane. Must match CHUNK in src/stats/tap.rs.
const CHUNK: u32 = 64u;
// Private histogram words: copy_words joint words, the SPECIAL words (zeros, NaN, +Inf, -Inf)
// and a discard word; copy_words + SPECIAL + 1 <= HIST_WORDS, checked by the host.
const HIST_WORDS: u32 = 1024u;
// Histogram words after the joint words: zeros, NaN, +Inf, -Inf.
const SPECIAL: u32 = 4u;
// Per-workgroup integer counters, in this order after the histogram words of a row: the SPECIAL
// words, then the Hoyer token counts (included, excluded), which each lane keeps in registers.
const N_COUNTERS: u32 = 6u;
const LANE_COUNTERS: u32 = N_COUNTERS - SPECIAL;
// Float words after the counters: s1 (hi, lo), s2 (hi, lo), min, max, h1 (hi, lo), h2 (hi, lo),
// the shifts of the values and of Hoyer.
const N_FLOATS: u32 = 12u;
const ABS_MASK: u32 = 0x7fffffffu;
const INF_BITS: u32 = 0x7f800000u;
// Log histogram: 4 bins per octave over [2^-24, 2^8): biased exponents 103..134.
const LOG_E_MIN: u32 = 103u;
const LOG_E_END: u32 = 135u;
const LOG_WORDS: u32 = 130u;

var<private> hist_words: array<u32, HIST_WORDS>;
var<workgroup> hist: array<atomic<u32>, HIST_WORDS>;
var<workgroup> tok: array<vec2<f32>, 512>; // CHUNK * WG
var<private> tokp: array<vec2<f32>, CHUNK>;
var<workgroup> red_u: array<u32, 16>; // WG * LANE_COUNTERS
var<workgroup> red_f: array<vec2<f32>, 48>; // WG * 6 (s1, s2, minmax, h1, h2, unused)

// A copy of params that tap_stats makes before its loops, read by the histogram functions:
// llvmpipe reloads a uniform's fields inside a loop that stores to private memory (it
// cannot rule out that they alias), a copy in registers it does not.
var<private> bins: Meta;

fn inf() -> f32 { return bitcast<f32>(INF_BITS); }

// keep, keep4, two_sum, df_add, acc4 and acc1: the prelude compensated.wgsl.

// The four accumulators of a lane as one double-f32 pair.
fn df_of4(s: vec4<f32>, c: vec4<f32>) -> vec2<f32> {
    var r = vec2<f32>(s.x, c.x);
    r = df_add(r, vec2<f32>(s.y, c.y));
    r = df_add(r, vec2<f32>(s.z, c.z));
    r = df_add(r, vec2<f32>(s.w, c.w));
    return r;
}

// Linear histogram word: 0 underflow (x < lo), 1 + bin, hist_bins + 1 overflow (x >= hi).
// Branch-free; x is not NaN (NaN goes to the discard word before this matters).
fn linear_word(x: f32) -> u32 {
    if (HIST_EXACT) {
        // x * scale is exact (scale a power of two, at least 1): the word is floor(x * scale)
        // - lo_units + 1, clamped to [0, hist_bins + 1], which takes the underflow (x < lo)
        // and the overflow (x >= hi, +Inf) without comparing x with the range. The product
        // is clamped first so that the conversion to i32 is exact (-Inf included).
        let t = clamp(x * bins.hist_scale, -16777216.0, 16777216.0);
        return u32(clamp(i32(floor(t)) + (1 - bins.hist_lo_units), 0,
                         i32(bins.hist_bins) + 1));
    }
    let last = i32(bins.hist_bins) - 1;
    var b: i32;
    if (HIST_TABLE) {
        let t = clamp((x - bins.hist_lo) * bins.hist_scale, -1.0, f32(bins.hist_bins));
        b = clamp(i32(floor(t)), 0, last);
        b = clamp(b - select(0, 1, x < edges[b]) + select(0, 1, x >= edges[b + 1]), 0, last);
    } else {
        // x * scale is exact (a power of two) but may underflow (scale < 1), so floor's bin
        // is checked against the edges rebuilt exactly in f32.
        let t = clamp(x * bins.hist_scale, -16777216.0, 16777216.0);
        b = clamp(i32(floor(t)) - bins.hist_lo_units, 0, last);
        let e = f32(bins.hist_lo_units + b) * bins.hist_width;
        b = clamp(b - select(0, 1, x < e) + select(0, 1, x >= e + bins.hist_width), 0, last);
    }
    let w = select(u32(b) + 1u, bins.hist_bins + 1u, x >= bins.hist_hi);
    return select(w, 0u, x < bins.hist_lo);
}

fn keep_split(a: f32) -> vec2<f32> {
    // Veltkamp: a = hi + lo with 12 significant bits each, so products of halves are exact.
    let c = keep(4097.0 * a);
    let hi = keep(c - keep(c - a));
    return vec2<f32>(hi, a - hi);
}

// Positive histogram word for 0 < x: bin b covers (e_b, e_{b+1}]; pos_bins is the overflow.
// Branch-free; the caller discards x <= 0 and NaN.
fn pos_word(x: f32) -> u32 {
    if (POS_TABLE) {
        let last = i32(bins.pos_bins) - 1;
        let xc = min(x, bins.pos_hi);
        var b = clamp(i32(ceil(xc * bins.pos_scale)) - 1, 0, last);
        let e = bins.hist_bins + 1u;
        b = b - select(0, 1, !(xc > edges[e + u32(b)]))
            + select(0, 1, xc > edges[e + u32(b) + 1u]);
        return select(u32(clamp(b, 0, last)), bins.pos_bins, x > bins.pos_hi);
    } else {
        // x is clamped to the f32 after hi (hi > 0, so its bits plus one), whose bin below is
        // pos_bins (the overflow): so the overflow needs no comparison, and every product
        // stays exact.
        let xc = min(x, bitcast<f32>(bitcast<u32>(bins.pos_hi) + 1u));
        let p = xc * bins.pos_scale;
        // xc * scale = p + err exactly: xc > i iff p > i, or p == i and err > 0. So the bin,
        // ceil(xc * scale) - 1, is ceil(p) - 1 unless p is an integer.
        var err: f32;
        if (POS_TWO_POWERS) {
            // t1 = xc * hi and t2 = xc * lo are exact, p = t1 + t2 rounded (the same rounding
            // of the same real as xc * scale), and |t1| >= |t2|: Fast2Sum's error t2 - (p - t1).
            err = (keep(xc * bins.pos_scale_hi) - p) + xc * bins.pos_scale_lo;
        } else {
            // Dekker's product over the Veltkamp halves of xc and of the scale.
            let a = keep_split(xc);
            err = ((keep(a.x * bins.pos_scale_hi) - p) + a.x * bins.pos_scale_lo
                + a.y * bins.pos_scale_hi) + a.y * bins.pos_scale_lo;
        }
        let c = ceil(p);
        // At most pos_bins (p < pos_bins + 1); the max keeps bin 0 should an adapter flush
        // a denormal product to zero.
        return u32(max(i32(c) - 1 + select(0, 1, c == p && err > 0.0), 0));
    }
}

// Log histogram word of |x| given its bits a (nonzero, not NaN): 0 below 2^-24, 1 + bin,
// 129 at or above 2^8 (Inf included). Within an octave the bin is the number of edges
// 2^(k/4), k = 1, 2, 3, that the mantissa reaches: integer thresholds log_t1..3.
fn log_word(a: u32) -> u32 {
    // 1 + (e - LOG_E_MIN) * 4 + q, clamped: at most 0 for e < LOG_E_MIN, at least 129 for
    // e >= LOG_E_END. Signed arithmetic (m < 2^23, e < 256): AVX2 has no unsigned compare.
    let m = i32(a & 0x7fffffu);
    let q = select(0, 1, m >= i32(bins.log_t1)) + select(0, 1, m >= i32(bins.log_t2))
        + select(0, 1, m >= i32(bins.log_t3));
    let w = i32(a >> 23u) * 4 + q + (1 - 4 * i32(LOG_E_MIN));
    return u32(clamp(w, 0, i32(LOG_WORDS) - 1));
}

// The one histogram update of an entry, unconditionally (see the header): the joint word of
// its linear, positive and log words (src/stats/joint.rs: each is nondecreasing in x on either
// side of zero, so their sum names all three, and the host splits the counts after the pass);
// zeros, NaN, +Inf and -Inf go to the words copy_words + 0..3 and idle channels to the discard
// word copy_words + 4. The clamps only keep the word in its region should an adapter flush
// denormals to zero.
fn scatter(x: f32, ok: bool) {
    let bits = bitcast<u32>(x);
    let a = bits & ABS_MASK;
    let pos = x > 0.0;
    let lw = linear_word(x);
    let gw = log_word(a);
    // lw <= hist_bins + 1 always; the max and min keep each side in its region.
    let up = max(lw, bins.lin_pos_min) - bins.lin_pos_min + pos_word(x) + gw;
    let down = bins.neg_base + min(lw, bins.lin_neg_max) + (LOG_WORDS - 1u - gw);
    // Zero 0, NaN 1, +Inf 2, -Inf 3 (2 + the sign bit).
    let special = bins.copy_words
        + select(select(2u + (bits >> 31u), 1u, a > INF_BITS), 0u, a == 0u);
    // a != 0 && a < INF_BITS as one comparison (a - 1 wraps to the top for a = 0).
    let counted = u32(i32(a) - 1) < INF_BITS - 1u;
    let word = select(special, select(down, up, pos), counted);
    hist_words[select(word, bins.copy_words + SPECIAL, !ok)] += 1u;
}

// The shifts subtracted before summing moments, (values, Hoyer): the first batch takes the
// mean of up to 64 finite entries sampled evenly from its valid entries, and the Hoyer value
// of its first token (every workgroup computes the same values); stats_fold stores them, and
// later batches read them back. Shifting by a value near the mean keeps the variance from
// cancelling when |mean| >> std (e.g. every token with nearly the same Hoyer value).
fn moment_shifts(n_valid: u32) -> vec2<f32> {
    if (state[params.shift_word + 2u] != 0u) {
        return vec2<f32>(bitcast<f32>(state[params.shift_word]),
                         bitcast<f32>(state[params.shift_word + 1u]));
    }
    let total = n_valid * params.positions * params.channels;
    let stride = max(total / 64u, 1u);
    var s = 0.0;
    var k = 0u;
    for (var i = 0u; i < min(total, 64u); i++) {
        let v = load1(i * stride);
        if ((bitcast<u32>(v) & ABS_MASK) < INF_BITS) {
            s += v;
            k += 1u;
        }
    }
    var l1 = 0.0;
    var l2 = 0.0;
    for (var c = 0u; c < params.channels; c++) {
        let v = abs(load1(c));
        l1 += v;
        l2 += v * v;
    }
    var h = 0.5;
    if ((bitcast<u32>(l1) & ABS_MASK) < INF_BITS && (bitcast<u32>(l2) & ABS_MASK) < INF_BITS
        && !(l2 == 0.0 && l1 > 0.0)) {
        h = hoyer(l1, sqrt(l2));
    }
    return vec2<f32>(select(0.0, s / f32(k), k > 0u), h);
}

// Hoyer of a token from its norms (finite, l2 > 0 unless l1 == 0).
fn hoyer(l1: f32, l2: f32) -> f32 {
    if (l1 > 0.0 && params.channels > 1u) {
        return (params.sqrt_c - l1 / l2) / (params.sqrt_c - 1.0);
    }
    return 1.0;
}

fn tap_stats(lane: u32, wid: u32) {
    // grid() may round the workgroup count up; surplus workgroups own no row.
    if (wid >= params.groups) { return; }
    // Keeps the edge table in the layout when neither histogram needs it (compiled out).
    _ = &edges;
    let n_valid = batch[0];
    let items = n_valid * params.chunks;
    let words = params.copy_words + SPECIAL;
    for (var w = 0u; w <= words; w++) {
        hist_words[w] = 0u;
    }
    let C = params.channels;
    bins = params;
    let shifts = moment_shifts(n_valid);
    let shift = shifts.x;

    for (var w = lane; w < words; w += WG) {
        atomicStore(&hist[w], 0u);
    }
    workgroupBarrier();

    var s1 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var mn = vec4<f32>(inf());
    var mx = vec4<f32>(-inf());
    var h1 = 0.0;
    var hc1 = 0.0;
    var h2 = 0.0;
    var hc2 = 0.0;
    var h_tokens = 0u;
    var h_excluded = 0u;
    let thr = vec4<f32>(params.threshold);
    let use_abs = params.pred_abs != 0u;

    for (var item = wid; item < items; item += params.groups) {
        let img = item / params.chunks;
        let p0 = (item % params.chunks) * params.chunk_len;
        let p1 = min(p0 + params.chunk_len, params.positions);
        for (var cb = 0u; cb < C; cb += 4u * WG) {
            let c = cb + 4u * lane;
            let valid = min(select(0u, C - c, c < C), 4u);
            let ok = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid);
            var cnt = vec4<u32>(0u);
            var pool = vec4<f32>(0.0);
            // The index advances by C per position: on llvmpipe, recomputing it from the
            // position made each load far slower (measured 30x in stats_fold). Idle lanes
            // (channels past C) load channel 0 and are masked out by `ok`.
            var at = (img * params.positions + p0) * C + select(c, 0u, valid == 0u);
            let lv = max(valid, 1u);
            for (var p = p0; p < p1; p++) {
                let x = load4(at, lv);
                at += C;
                let ab = bitcast<vec4<u32>>(x) & vec4<u32>(ABS_MASK);
                let fin = ab < vec4<u32>(INF_BITS);
                let y = select(x, abs(x), use_abs);
                // NaN is never active: every comparison with it is false.
                cnt += select(vec4<u32>(0u), vec4<u32>(1u), ok & (y > thr));
                pool += select(vec4<f32>(0.0), x, ok);
                let f = ok & fin;
                // x - shift as an exact pair (d, dl): when the shift is large next to x, the
                // rounding of x - shift would otherwise enter the sum uncompensated.
                let xs = select(vec4<f32>(shift), x, f);
                let d = xs - vec4<f32>(shift);
                let kd = keep4(d);
                let bb = kd - xs;
                let dl = (xs - (kd - bb)) + (vec4<f32>(-shift) - bb);
                acc4(&s1, &c1, d);
                c1 += dl;
                acc4(&s2, &c2, d * d);
                mn = min(mn, select(vec4<f32>(inf()), x, f));
                mx = max(mx, select(vec4<f32>(-inf()), x, f));
                let ax = select(vec4<f32>(0.0), abs(x), ok);
                // Unrolled, unconditional: see the header.
                scatter(x.x, ok.x);
                scatter(x.y, ok.y);
                scatter(x.z, ok.z);
                scatter(x.w, ok.w);
                let q = p - p0;
                let before = select(tokp[q], vec2<f32>(0.0), cb == 0u);
                tokp[q] = before + vec2<f32>(ax.x + ax.y + ax.z + ax.w, dot(ax, ax));
            }
            let out = item * C + c;
            if (valid > 0u) { item_counts[out] = cnt.x; item_sums[out] = pool.x; }
            if (valid > 1u) { item_counts[out + 1u] = cnt.y; item_sums[out + 1u] = pool.y; }
            if (valid > 2u) { item_counts[out + 2u] = cnt.z; item_sums[out + 2u] = pool.z; }
            if (valid > 3u) { item_counts[out + 3u] = cnt.w; item_sums[out + 3u] = pool.w; }
        }
        for (var q = 0u; q < p1 - p0; q++) {
            tok[q * WG + lane] = tokp[q];
        }
        workgroupBarrier();
        // Hoyer of each token of the chunk: (sqrt(C) - |x|_1 / |x|_2) / (sqrt(C) - 1), 1 for a
        // zero vector (and for C = 1). Tokens whose norms are not finite in f32 (a NaN or Inf
        // entry, or a square overflowing) or whose squares all underflow are excluded from the
        // mean and written as NaN.
        for (var q = lane; q < p1 - p0; q += WG) {
            let b = q * WG;
            let t = ((tok[b] + tok[b + 1u]) + (tok[b + 2u] + tok[b + 3u]))
                + ((tok[b + 4u] + tok[b + 5u]) + (tok[b + 6u] + tok[b + 7u]));
            let l1 = t.x;
            let l2 = sqrt(t.y);
            let finite = (bitcast<u32>(l1) & ABS_MASK) < INF_BITS
                && (bitcast<u32>(l2) & ABS_MASK) < INF_BITS && !(l2 == 0.0 && l1 > 0.0);
            var h = bitcast<f32>(0x7fc00000u);
            if (!finite) {
                h_excluded += 1u;
            } else {
                h = hoyer(l1, l2);
                let d = h - shifts.y;
                acc1(&h1, &hc1, d);
                acc1(&h2, &hc2, d * d);
                h_tokens += 1u;
            }
            if (params.write_hoyer != 0u) {
                hoyer_out[img * params.positions + p0 + q] = h;
            }
        }
        workgroupBarrier();
    }

    // Merge the invocations' histograms (with the SPECIAL counters after them), then the other
    // counters and sums, into this workgroup's row.
    let row = wid * params.row_words;
    for (var w = 0u; w < words; w++) {
        atomicAdd(&hist[w], hist_words[w]);
    }
    workgroupBarrier();
    for (var w = lane; w < words; w += WG) {
        partial[row + w] = atomicLoad(&hist[w]);
    }
    red_u[lane * LANE_COUNTERS] = h_tokens;
    red_u[lane * LANE_COUNTERS + 1u] = h_excluded;
    let v = lane * 6u;
    red_f[v] = df_of4(s1, c1);
    red_f[v + 1u] = df_of4(s2, c2);
    red_f[v + 2u] = vec2<f32>(min(min(mn.x, mn.y), min(mn.z, mn.w)),
                              max(max(mx.x, mx.y), max(mx.z, mx.w)));
    red_f[v + 3u] = vec2<f32>(h1, hc1);
    red_f[v + 4u] = vec2<f32>(h2, hc2);
    workgroupBarrier();
    if (lane == 0u) {
        let cw = row + params.copy_words;
        for (var k = 0u; k < LANE_COUNTERS; k++) {
            var s = 0u;
            for (var l = 0u; l < WG; l++) {
                s += red_u[l * LANE_COUNTERS + k];
            }
            partial[cw + SPECIAL + k] = s;
        }
        var f1 = vec2<f32>(0.0);
        var f2 = vec2<f32>(0.0);
        var g1 = vec2<f32>(0.0);
        var g2 = vec2<f32>(0.0);
        var lo = inf();
        var hi = -inf();
        for (var l = 0u; l < WG; l++) {
            f1 = df_add(f1, red_f[l * 6u]);
            f2 = df_add(f2, red_f[l * 6u + 1u]);
            lo = min(lo, red_f[l * 6u + 2u].x);
            hi = max(hi, red_f[l * 6u + 2u].y);
            g1 = df_add(g1, red_f[l * 6u + 3u]);
            g2 = df_add(g2, red_f[l * 6u + 4u]);
        }
        let fw = cw + N_COUNTERS;
        partial[fw] = bitcast<u32>(f1.x);
        partial[fw + 1u] = bitcast<u32>(f1.y);
        partial[fw + 2u] = bitcast<u32>(f2.x);
        partial[fw + 3u] = bitcast<u32>(f2.y);
        partial[fw + 4u] = bitcast<u32>(lo);
        partial[fw + 5u] = bitcast<u32>(hi);
        partial[fw + 6u] = bitcast<u32>(g1.x);
        partial[fw + 7u] = bitcast<u32>(g1.y);
        partial[fw + 8u] = bitcast<u32>(g2.x);
        partial[fw + 9u] = bitcast<u32>(g2.y);
        partial[fw + 10u] = bitcast<u32>(shifts.x);
        partial[fw + 11u] = bitcast<u32>(shifts.y);
    }
}
