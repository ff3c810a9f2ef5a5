// nullcode_probe: per token (one row of C channels of a tap), the two numbers of the null-code
// probe (../shared/DESIGN.md):
//   hoyer[r] = (sqrt(C) - |x|_1 / |x|_2) / (sqrt(C) - 1)   (1 for a zero row, and for C = 1)
//   cos[r]   = x . p / (|x|_2 |p|_2)                        (0 for a zero row or a zero pattern)
// where p is the tap's dominant binary pattern (p_c = 1 iff firing_rate[c] > 0.5), given as
// 0/1 floats with |p|_2 = sqrt(count of ones) in the uniform.
//
// Bindings: 0 params (Meta); 1 x [rows, C]; 2 pattern [C]; 3 hoyer [rows]; 4 cos [rows].
// Grid: ceil(rows / 64) workgroups of 64 in any grid shape (linear index wid.x + wid.y * nwg.x);
// one invocation per row, sums in f32 over C (C <= 65,535: llvmpipe's loop cap per invocation).

struct Meta { rows: u32, channels: u32, p_norm: f32, _pad: u32 }

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
    for (var k = 0u; k < c; k++) {
        let v = x[base + k];
        l1 += abs(v);
        l2 += v * v;
        dot += v * pattern[k];
    }
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
