// layernorm_rows_common: out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * weight + bias over the
// last dimension C of a [R, C] tensor, as layernorm.wgsl computes it, in the shape CPU adapters
// (lavapipe) want: one invocation per row, 8 rows per workgroup, no workgroup memory and no
// barriers. layernorm.wgsl's 64 invocations per row reduce through workgroup memory with 14
// barriers per row, and on llvmpipe every barrier switches between the workgroup's 8 SIMD
// threads: DINOv2-S's 25 LayerNorms took 285 ms per batch of 8 (8% of its forward pass).
// Here the 8 lanes of the workgroup's one SIMD thread walk 8 rows side by side, each reading its
// row as vec4 (C % 4 == 0, checked by ops::layernorm); the index advances by addition (see
// stats_tap_common.wgsl for why). Two passes over the row (mean, then centred variance) for
// accuracy, as layernorm.wgsl.
//
// The body shared by `layernorm_rows` (x, weight and bias read from storage buffers) and
// `layernorm_rows_texture` (the same from texture copies); each kernel file declares bindings
// 1-3 and `load_x` (vec4 i of x), `load_w` and `load_b` (vec4 j of weight and bias), and has an
// entry point that calls `normalise_rows`.
//
// Bindings: 0 params (Meta); 1 x [R, C] as vec4; 2 weight [C] as vec4; 3 bias [C] as vec4;
//           4 out [R, C] as vec4.
// Grid: ceil(R / 8) workgroups in any grid shape (linear index wid.x + wid.y * nwg.x); lanes
// past the last row return. Loop iterations per invocation: 3 C / 4 (llvmpipe's 65,535 cap
// allows C up to about 87,000; ops::layernorm routes wider rows to layernorm.wgsl).

struct Meta { rows: u32, cols: u32, eps: f32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

const WG: u32 = 8u;

fn total(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// Row `lane` of workgroup `group`'s eight.
fn normalise_rows(lane: u32, group: u32) {
    let row = group * WG + lane;
    if (row >= params.rows) { return; }
    let c4 = params.cols / 4u;
    let start = row * c4;
    let end = start + c4;
    let n = f32(params.cols);
    var s = vec4<f32>(0.0);
    for (var i = start; i < end; i++) { s += load_x(i); }
    let mean = vec4<f32>(total(s) / n);
    var q = vec4<f32>(0.0);
    for (var i = start; i < end; i++) {
        let d = load_x(i) - mean;
        q += d * d;
    }
    let inv = vec4<f32>(inverseSqrt(total(q) / n + params.eps));
    var j = 0u;
    for (var i = start; i < end; i++) {
        out[i] = (load_x(i) - mean) * inv * load_w(j) + load_b(j);
        j++;
    }
}
