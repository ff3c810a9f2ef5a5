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
// Grid: one workgroup per batch row (any grid shape, linear index wid.x + wid.y * nwg.x) of
// WG = 8 invocations, one SIMD thread on llvmpipe. The bucket quads are taken in passes of
// WG * QPL; in a pass invocation l owns the QPL consecutive quads from q0 = pass + l * QPL
// and, block by block, gathers the one feature quad of the block that lands in each. So in a
// block the eight invocations read eight runs of QPL consecutive quads that together cover the
// block (up to the wrap at the offset): the row is read in order, page by page. (Owning quads
// l, l + 256, ... instead, as this kernel first did, made every invocation of a SIMD thread
// step k floats per load; llvmpipe runs a workgroup's SIMD threads one after the other, so each
// walked the whole row 16 bytes per block, and the hardware prefetcher, which stops at page
// boundaries, could not follow: the loads took half the kernel's time, against ~0 read in
// order, measured on lavapipe.)
// Per block an invocation's QPL quads are unrolled (see the header of stats_tap_common.wgsl:
// llvmpipe silently ends a loop after 65,535 iterations per invocation), so it runs about
// passes * (blocks * (1 + (QPL + 1) / RUN) + 2 QPL) + SHIFT_SAMPLES / WG iterations; the host
// (src/rdm/accumulator.rs) checks that against its budget.
// Sums: per bucket quad, f32 runs of RUN blocks added to a running total; the centred sums t, u
// per invocation and vec4 component, per block (at most QPL quads), then f32 runs of RUN blocks
// added to running totals, then added over the workgroup pairwise.

struct Params {
    d: u32, k: u32, rows: u32, seed_lo: u32,
    seed_hi: u32, ones: u32, capacity: u32, _pad: u32,
}

// Bucket quads per invocation and pass: 8, 16 or 32, the smallest that covers k / 4 in one pass
// where one does (src/rdm/accumulator.rs, `sketch_quads_per_lane`). The unrolled calls past it
// are compiled out.
override QPL: u32 = 32u;
const WG: u32 = 8u;
const MAX_QPL: u32 = 32u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

// Per owned bucket quad: the current run of blocks, and the total of finished runs.
var<private> run: array<vec4<f32>, MAX_QPL>;
var<private> total: array<vec4<f32>, MAX_QPL>;

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

// What the quads of one block share.
struct Block {
    // Feature index of the block's first feature, relative to the row.
    start: u32,
    // k - offset(b): bucket quad q reads feature quad (4 q + shift) mod k of the block.
    shift: u32,
}

// What is fixed for the whole row.
struct Row {
    base: u32, d_end: u32, k: u32, quads: u32, q0: u32,
    a4: vec4<f32>, key_sign: vec4<u32>, ones: bool,
}

// Adds the owned bucket quad q0 + j's feature quad of block `blk` into run[j], and the shifted
// entries into the block's centred sums (bt, bu). Branch-free: a quad past the row's end or the
// bucket quads reads the row's first quad and adds zeros.
fn sketch_quad(j: u32, row: Row, blk: Block, bt: ptr<function, vec4<f32>>,
               bu: ptr<function, vec4<f32>>) {
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    let q = row.q0 + j;
    let p = 4u * q + blk.shift;
    let d = blk.start + select(p, p - row.k, p >= row.k);
    let valid = select(0u, min(4u, row.d_end - d), q < row.quads && d < row.d_end);
    let inside = lanes < vec4<u32>(valid);
    var v = vec4<f32>(1.0);
    if (!row.ones) {
        v = load4(row.base + select(0u, d, valid > 0u), max(valid, 1u)) - row.a4;
    }
    v = select(vec4<f32>(0.0), v, inside);
    *bt += v;
    *bu += v * v;
    let plus = (mix32x4((vec4<u32>(d) + lanes) ^ row.key_sign) >> vec4<u32>(31u))
        == vec4<u32>(1u);
    run[j] += select(-v, v, plus);
}

// sketch_quad for j0 .. j0 + 7.
fn sketch_eight(j0: u32, row: Row, blk: Block, bt: ptr<function, vec4<f32>>,
                bu: ptr<function, vec4<f32>>) {
    sketch_quad(j0, row, blk, bt, bu);
    sketch_quad(j0 + 1u, row, blk, bt, bu);
    sketch_quad(j0 + 2u, row, blk, bt, bu);
    sketch_quad(j0 + 3u, row, blk, bt, bu);
    sketch_quad(j0 + 4u, row, blk, bt, bu);
    sketch_quad(j0 + 5u, row, blk, bt, bu);
    sketch_quad(j0 + 6u, row, blk, bt, bu);
    sketch_quad(j0 + 7u, row, blk, bt, bu);
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
    let key_offset = mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x6f666673u));
    let key_sign = vec4<u32>(mix32(params.seed_lo ^ mix32(params.seed_hi ^ 0x7369676eu)));
    let blocks = (d_end + k - 1u) / k;
    var row = Row(base, d_end, k, quads, 0u, vec4<f32>(a), key_sign, ones);

    var sums: Centred;
    for (var pass0 = 0u; pass0 < quads; pass0 += WG * QPL) {
        row.q0 = pass0 + lane * QPL;
        for (var j = 0u; j < QPL; j++) {
            run[j] = vec4<f32>(0.0);
            total[j] = vec4<f32>(0.0);
        }
        for (var b0 = 0u; b0 < blocks; b0 += RUN) {
            for (var b = b0; b < min(b0 + RUN, blocks); b++) {
                let offset = 4u * (((mix32(b ^ key_offset) >> 16u) * quads) >> 16u);
                let blk = Block(b * k, k - offset);
                var bt = vec4<f32>(0.0);
                var bu = vec4<f32>(0.0);
                sketch_eight(0u, row, blk, &bt, &bu);
                if (QPL > 8u) { sketch_eight(8u, row, blk, &bt, &bu); }
                if (QPL > 16u) {
                    sketch_eight(16u, row, blk, &bt, &bu);
                    sketch_eight(24u, row, blk, &bt, &bu);
                }
                sums.run_t += bt;
                sums.run_u += bu;
            }
            sums.t += sums.run_t;
            sums.u += sums.run_u;
            sums.run_t = vec4<f32>(0.0);
            sums.run_u = vec4<f32>(0.0);
            for (var j = 0u; j < QPL; j++) {
                total[j] += run[j];
                run[j] = vec4<f32>(0.0);
            }
        }
        for (var j = 0u; j < min(QPL, quads - min(row.q0, quads)); j++) {
            out[r * quads + row.q0 + j] = total[j];
        }
    }
    let tu = centred_total(lane, sums);
    if (!ones && lane == 0u) {
        stats[n0 + r] = vec4<f32>(a, tu.x, tu.y, 0.0);
    }
}
