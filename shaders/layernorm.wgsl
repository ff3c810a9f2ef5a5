// layernorm: out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * weight + bias, over the last
// dimension C of a [R, C] tensor (PyTorch nn.LayerNorm; biased variance).
//
// Bindings: 0 params (Meta); 1 x [R, C]; 2 weight [C]; 3 bias [C]; 4 out [R, C].
// Grid: R workgroups, split by `grid()` into (x, y) when R exceeds the per-dimension limit;
// 64 invocations per row. Two passes (mean, then centred variance) for accuracy.

struct Meta { rows: u32, cols: u32, eps: f32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
var<workgroup> partial: array<f32, WG>;

fn reduce_sum(lane: u32, v: f32) -> f32 {
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

@compute @workgroup_size(64)
fn layernorm(@builtin(local_invocation_index) lane: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= params.rows) { return; }
    let base = row * params.cols;
    var s = 0.0;
    for (var c = lane; c < params.cols; c += WG) { s += x[base + c]; }
    let mean = reduce_sum(lane, s) / f32(params.cols);
    var q = 0.0;
    for (var c = lane; c < params.cols; c += WG) {
        let d = x[base + c] - mean;
        q += d * d;
    }
    let inv = inverseSqrt(reduce_sum(lane, q) / f32(params.cols) + params.eps);
    for (var c = lane; c < params.cols; c += WG) {
        out[base + c] = (x[base + c] - mean) * inv * weight[c] + bias[c];
    }
}
