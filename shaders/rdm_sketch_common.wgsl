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
// Since a workgroup reads its whole row, it also computes the row's shift a_r and centred sums
// (rdm_rows.wgsl) and stores stats[n0 + r] = (a_r, t_r, u_r, 0), as rdm_rowstats does in exact
// mode (cursor = (n0, nb), written by the host before each batch). With `ones` set, x is the
// all-ones vector, a = 0 and no stats are written: out[0, :] = S 1 (exact: sums of +-1), which
// the finalisation needs to undo the shift.
// The row is read by `load4` from a prelude: rows_vec4.wgsl (rdm_sketch, D % 4 == 0),
// rows_texture.wgsl (rdm_sketch_texture, the same from a texture copy) or rows_scalar.wgsl
// (rdm_sketch_scalar).
//
// Bindings: 0 params; 1 x [rows, D] (the prelude); 2 cursor [4] u32; 3 stats [capacity]
//           vec4<f32>; 4 out [rows, k] as vec4.
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation l owns the bucket quads l, l + 256, ... and for each gathers the one
// quad per block that lands in it (neighbouring invocations read neighbouring quads). Loop
// iterations per invocation: ceil(k / 1024) * ceil(D / k). Sketch sums: f32 runs of 64 blocks
// added to a running total.

struct Params {
    d: u32, k: u32, rows: u32, seed_lo: u32,
    seed_hi: u32, ones: u32, capacity: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

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

fn sketch_rows(lane: u32, r: u32) {
    let ones = params.ones != 0u;
    let n0 = cursor[0];
    // Uniform per workgroup: the barriers below are reached by all or none.
    if (r >= params.rows || (!ones && (r >= cursor[1] || n0 + r >= params.capacity))) { return; }
    let k = params.k;
    let quads = k / 4u;
    let d_end = params.d;
    let base = r * d_end;
    var a = 0.0;
    if (!ones) { a = row_shift(lane, base, d_end); }
    let a4 = vec4<f32>(a);
    let key_offset = mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x6f666673u));
    let key_sign = vec4<u32>(mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x7369676eu)));
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);

    var sums: Centred;
    for (var q = lane; q < quads; q += WG) {
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
                let inside = lanes < vec4<u32>(valid);
                var v = vec4<f32>(1.0);
                if (!ones) { v = load4(base + d, valid) - a4; }
                v = select(vec4<f32>(0.0), v, inside);
                centred_add(&sums, v);
                let plus = (mix32x4((vec4<u32>(d) + lanes) ^ key_sign) >> vec4<u32>(31u))
                    == vec4<u32>(1u);
                run += select(-v, v, plus);
            }
            b += 1u;
            count += 1u;
            if (count == RUN) { total += run; run = vec4<f32>(0.0); count = 0u; }
        }
        out[r * quads + q] = total + run;
    }
    let tu = centred_total(lane, sums);
    if (!ones && lane == 0u) {
        stats[n0 + r] = vec4<f32>(a, tu.x, tu.y, 0.0);
    }
}
