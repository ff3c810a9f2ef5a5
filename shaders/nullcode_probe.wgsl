// nullcode_probe: per token (one row of C channels of a tap), the two numbers of the null-code
// probe (../shared/DESIGN.md):
//   hoyer[r] = (sqrt(C) - |x|_1 / |x|_2) / (sqrt(C) - 1)   (1 for a zero row, and for C = 1)
//   cos[r]   = x . p / (|x|_2 |p|_2)                        (0 for a zero row or a zero pattern)
// where p is the tap's dominant binary pattern (p_c = 1 iff firing_rate[c] > 0.5), given as
// 0/1 floats with |p|_2 = sqrt(count of ones) in the uniform.
//
// Bindings: 0 params (Meta); 1 x [rows, C]; 2 pattern [C]; 3 hoyer [rows]; 4 cos [rows].
// Grid: ceil(rows / 64) workgroups of 64 in any grid shape (linear index wid.x + wid.y * nwg.x);
// one invocation per row (C <= gpu::LOOP_BUDGET, within llvmpipe's loop cap per invocation).
// The three sums over C are compensated (TwoSum per term, errors collected apart), so each is
// within a few f32 roundings of its exact value whatever C: plain f32 sums over C = 768 were off
// by about 1e-6 in Hoyer, the size of the tolerance tests/nullcode.rs checks against f64. acc1
// and `opaque`: the prelude compensated.wgsl.

struct Meta { rows: u32, channels: u32, p_norm: f32, opaque: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> pattern: array<f32>;
@group(0) @binding(3) var<storage, read_write> hoyer: array<f32>;
@group(0) @binding(4) var<storage, read_write> cos: array<f32>;

@compute @workgroup_size(64)
fn nullcode_probe(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lane: u32) {
    let r = (wid.x + wid.y * nwg.x) * 64u + lane;
    if (r >= params.rows) { return; }
    let c = params.channels;
    let base = r * c;
    var l1 = 0.0;
    var l2 = 0.0;
    var dot = 0.0;
    var e1 = 0.0;
    var e2 = 0.0;
    var ed = 0.0;
    for (var k = 0u; k < c; k++) {
        let v = x[base + k];
        acc1(&l1, &e1, abs(v));
        acc1(&l2, &e2, v * v);
        acc1(&dot, &ed, v * pattern[k]);
    }
    l1 += e1;
    l2 += e2;
    dot += ed;
    let norm = sqrt(l2);
    let sc = sqrt(f32(c));
    var h = 1.0;
    if (norm > 0.0 && c > 1u) {
        h = (sc - l1 / norm) / (sc - 1.0);
    }
    hoyer[r] = h;
    var s = 0.0;
    if (norm > 0.0 && params.p_norm > 0.0) {
        s = dot / (norm * params.p_norm);
    }
    cos[r] = s;
}
