// rdm_sketch: a seeded sparse random projection (a count sketch with block-cyclic buckets) of
// each valid batch row's shifted flat features:
//
//   out[r, j] = sum over d with bucket(d) = j of sign(d) * (x[r, d] - a_r)
//
// Feature d lies in block b = d / k at position p = d % k; bucket(d) = (p + offset(b)) % k with
// offset(b) = mix32(b ^ key_offset) % k, and sign(d) = +1 when the top bit of mix32(d ^ key_sign)
// is set, else -1; key_offset = mix32(seed_lo ^ mix32(seed_hi ^ 0x6f666673)), key_sign the
// same with 0x7369676e, mix32 = "lowbias32". src/rdm/sketch.rs computes the same on the CPU.
// Every feature lands in exactly one bucket, so a row costs O(D), not O(D k), and the sketch
// is never stored. Its inner products are unbiased with the variance of a dense +-1/sqrt(k)
// projection or less (see src/rdm/sketch.rs).
// a_r = stats[n0 + r].x is the f32 mean from rdm_rowstats (cursor = (n0, nb)). With `ones` set,
// x is the all-ones vector and a = 0: out[0, :] = S 1 (exact: sums of +-1), which the
// finalisation needs to undo the shift.
//
// Bindings: 0 params; 1 x [rows, D]; 2 cursor [4] u32; 3 stats [capacity] vec4<f32>;
//           4 out [rows, k].
// Grid: ceil(k / 256) * rows workgroups in any shape (linear index wid.x + wid.y * nwg.x), 256
// invocations; invocation j of row r gathers the one feature per block that lands in bucket j
// (neighbouring invocations read neighbouring features). Sums: f32 runs of 64 blocks added to
// a running total.

struct Params {
    d: u32, k: u32, rows: u32, seed_lo: u32,
    seed_hi: u32, ones: u32, capacity: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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

@compute @workgroup_size(256)
fn rdm_sketch(@builtin(local_invocation_index) lane: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = params.k;
    let groups = (k + WG - 1u) / WG;
    let id = wid.x + wid.y * nwg.x;
    let r = id / groups;
    let j = (id % groups) * WG + lane;
    // No barriers below, so invocations may leave on their own.
    if (r >= params.rows || j >= k) { return; }
    if (params.ones == 0u && r >= cursor[1]) { return; }
    var a = 0.0;
    if (params.ones == 0u) { a = stats[min(cursor[0] + r, params.capacity - 1u)].x; }
    let key_offset = mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x6f666673u));
    let key_sign = mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x7369676eu));
    let base = r * params.d;
    let blocks = (params.d + k - 1u) / k;

    var total = 0.0;
    var run = 0.0;
    var count = 0u;
    for (var b = 0u; b < blocks; b++) {
        let offset = mix32(b ^ key_offset) % k;
        let d = b * k + (j + k - offset) % k;
        if (d < params.d) {
            var v = 1.0;
            if (params.ones == 0u) { v = x[base + d] - a; }
            run += select(-v, v, (mix32(d ^ key_sign) >> 31u) == 1u);
        }
        count += 1u;
        if (count == RUN) { total += run; run = 0.0; count = 0u; }
    }
    out[r * k + j] = total + run;
}
