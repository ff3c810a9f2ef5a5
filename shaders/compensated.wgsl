// Prelude of the kernels that sum compensated (stats_tap, stats_tap_scalar, stats_fold,
// nullcode_probe): TwoSum and double-f32 arithmetic. The including kernel's uniform `params`
// has a field `opaque`, always 0: `keep` hides values behind it so that no compiler can simplify
// the compensation away (or contract it into an FMA).

fn keep(x: f32) -> f32 { return bitcast<f32>(bitcast<u32>(x) ^ params.opaque); }

fn keep4(x: vec4<f32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(bitcast<vec4<u32>>(x) ^ vec4<u32>(params.opaque));
}

// Exact a + b = s + e (Knuth's TwoSum).
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = a + b;
    let ks = keep(s);
    let bb = ks - a;
    let e = (a - (ks - bb)) + (b - bb);
    return vec2<f32>(s, e);
}

// Double-f32 addition of (hi, lo) pairs.
fn df_add(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
    let s = two_sum(x.x, y.x);
    let lo = s.y + x.y + y.y;
    let hi = s.x + lo;
    return vec2<f32>(hi, lo - (keep(hi) - s.x));
}

// Add v to four independent accumulators (s, c), the true sum being s + c: TwoSum gives the
// exact rounding error of s + v whatever the magnitudes (Kahan's step is exact only when
// |s| >= |v|, and tap values mix magnitudes), and c collects those errors.
fn acc4(s: ptr<function, vec4<f32>>, c: ptr<function, vec4<f32>>, v: vec4<f32>) {
    let t = *s + v;
    let kt = keep4(t);
    let bb = kt - *s;
    *c += (*s - (kt - bb)) + (v - bb);
    *s = t;
}

// acc4 for one accumulator.
fn acc1(s: ptr<function, f32>, c: ptr<function, f32>, v: f32) {
    let t = *s + v;
    let kt = keep(t);
    let bb = kt - *s;
    *c += (*s - (kt - bb)) + (v - bb);
    *s = t;
}
