// rdm_sketch_common: a seeded sparse random projection (a count sketch with block-cyclic
// buckets) of each valid batch row's shifted flat features:
//
//   out[r, j] = sum over d with bucket(d) = j of sign(d) * (x[r, d] - a_r)
//
// Feature d lies in block b = d / k at position p = d % k; bucket(d) = (p + offset(b)) % k with
// offset(b) = 4 * (((mix32(b ^ key_offset) >> 16) * (k / 4)) >> 16) (a multiple of 4, so four
// consecutive features of a block land in four consecutive buckets and are read as one quad),
// and sign(d) = +1 when the top bit of mix32(d ^ key_sign) is set, else -1; key_offset =
// mix32(seed_lo ^ mix32(seed_hi ^ 0x6f666673)), key_sign the same with 0x7369676e, mix32 =
// "lowbias32". k % 4 == 0 and k / 4 < 65536. src/rdm/sketch.rs computes the same on the CPU.
// Every feature lands in exactly one bucket, so a row costs O(D), not O(D k), and the sketch
// is never stored. Its inner products are unbiased with the variance of a dense +-1/sqrt(k)
// projection or less (see src/rdm/sketch.rs).
// a_r = stats[n0 + r].x is the shift from rdm_rowstats (cursor = (n0, nb)). With `ones` set,
// x is the all-ones vector and a = 0: out[0, :] = S 1 (exact: sums of +-1), which the
// finalisation needs to undo the shift.
// The row is read by `load4` from a prelude: rows_vec4.wgsl (rdm_sketch, D % 4 == 0) or
// rows_scalar.wgsl (rdm_sketch_scalar).
//
// Bindings: 0 params; 1 x [rows, D] (the prelude); 2 cursor [4] u32; 3 stats [capacity]
//           vec4<f32>; 4 out [rows, k] as vec4.
// Grid: ceil(k / 1024) * rows workgroups in any shape (linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation q of row r gathers the one quad per block that lands in buckets
// 4q..4q+3 (neighbouring invocations read neighbouring quads). Loop iterations per invocation:
// ceil(D / k). Sums: f32 runs of 64 blocks added to a running total.

struct Params {
    d: u32, k: u32, rows: u32, seed_lo: u32,
    seed_hi: u32, ones: u32, capacity: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

const WG: u32 = 256u;
const RUN: u32 = 64u;

fn mix32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn mix32x4(v: vec4<u32>) -> vec4<u32> {
    var h = v;
    h ^= h >> vec4<u32>(16u);
    h *= vec4<u32>(0x7feb352du);
    h ^= h >> vec4<u32>(15u);
    h *= vec4<u32>(0x846ca68bu);
    h ^= h >> vec4<u32>(16u);
    return h;
}

fn sketch_rows(lane: u32, id: u32) {
    let k = params.k;
    let quads = k / 4u;
    let groups = (quads + WG - 1u) / WG;
    let r = id / groups;
    let q = (id % groups) * WG + lane;
    // No barriers below, so invocations may leave on their own.
    if (r >= params.rows || q >= quads) { return; }
    if (params.ones == 0u && r >= cursor[1]) { return; }
    var a = vec4<f32>(0.0);
    if (params.ones == 0u) { a = vec4<f32>(stats[min(cursor[0] + r, params.capacity - 1u)].x); }
    let key_offset = mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x6f666673u));
    let key_sign = vec4<u32>(mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x7369676eu)));
    let d_end = params.d;
    let base = r * d_end;
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);

    var total = vec4<f32>(0.0);
    var run = vec4<f32>(0.0);
    var count = 0u;
    // Block b starts at feature b0 = b * k.
    var b = 0u;
    for (var b0 = 0u; b0 < d_end; b0 += k) {
        let offset = 4u * (((mix32(b ^ key_offset) >> 16u) * quads) >> 16u);
        let p = 4u * q + k - offset;
        let d = b0 + select(p, p - k, p >= k);
        if (d < d_end) {
            let valid = min(4u, d_end - d);
            var v = vec4<f32>(1.0);
            if (params.ones == 0u) { v = load4(base + d, valid) - a; }
            let dd = vec4<u32>(d) + lanes;
            let plus = (mix32x4(dd ^ key_sign) >> vec4<u32>(31u)) == vec4<u32>(1u);
            run += select(vec4<f32>(0.0), select(-v, v, plus), lanes < vec4<u32>(valid));
        }
        b += 1u;
        count += 1u;
        if (count == RUN) { total += run; run = vec4<f32>(0.0); count = 0u; }
    }
    out[r * quads + q] = total + run;
}
