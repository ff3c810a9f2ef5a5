// rdm_rows: what rdm_rowstats and rdm_sketch share. Each walks one image's flat feature row x
// [D] per workgroup of WG invocations (the including kernel's constant: 256 for rdm_rowstats,
// 8 for rdm_sketch), through `load4` / `load1` (rows_vec4.wgsl, rows_scalar.wgsl or
// rows_texture.wgsl), and needs a shift `a` close to the row's mean and the centred sums
// t = sum(x - a), u = sum((x - a)^2): the RDM finalisation (src/rdm/gram.rs, `GramStats`)
// centres with `a` and corrects exactly with t, so `a` only has to be close to the mean (it
// keeps u, and the products of shifted rows, free of the cancellation a large common offset
// would cause). `a` is the mean of min(D, 256) entries spaced evenly over the row.
// Accuracy of t and u (rdm_rowstats): each invocation sums its entries per vec4 component in
// f32 runs of 64, added to running totals; the workgroup adds the 256 totals pairwise, so the
// rounding error is about (sqrt(64) + sqrt(D / 65536) + 10) ulp of the sum of |terms|.
// (rdm_sketch sums per block first: see rdm_sketch_common.wgsl.)

const RUN: u32 = 64u;
// Entries the shift `a` averages (fewer when D is smaller).
const SHIFT_SAMPLES: u32 = 256u;
var<workgroup> partial: array<vec2<f32>, WG>;

// The sum over the workgroup of every invocation's `v` (all invocations must call it).
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

// The shift of the row of D entries starting at `base` (all invocations must call it).
fn row_shift(lane: u32, base: u32, d: u32) -> f32 {
    let samples = min(d, SHIFT_SAMPLES);
    var s = 0.0;
    for (var i = lane; i < samples; i += WG) {
        s += load1(base + i * (d / samples));
    }
    return reduce2(lane, vec2<f32>(s, 0.0)).x / f32(samples);
}

// Running centred sums of one invocation: per vec4 component, completed runs (`t`, `u`) and the
// current run.
struct Centred { t: vec4<f32>, u: vec4<f32>, run_t: vec4<f32>, run_u: vec4<f32>, count: u32 }

fn centred_add(c: ptr<function, Centred>, y: vec4<f32>) {
    (*c).run_t += y;
    (*c).run_u += y * y;
    (*c).count += 1u;
    if ((*c).count == RUN) {
        (*c).t += (*c).run_t;
        (*c).u += (*c).run_u;
        (*c).run_t = vec4<f32>(0.0);
        (*c).run_u = vec4<f32>(0.0);
        (*c).count = 0u;
    }
}

// (t, u) of the workgroup's row from every invocation's sums (all invocations must call it).
fn centred_total(lane: u32, c: Centred) -> vec2<f32> {
    let t = c.t + c.run_t;
    let u = c.u + c.run_u;
    return reduce2(lane, vec2<f32>((t.x + t.y) + (t.z + t.w), (u.x + u.y) + (u.z + u.w)));
}
