// attention_softmax: scores to attention weights in place, row by row.
//   p[r, j] = exp(scale * (s[r, j] - max_j s[r, j])) / sum_j (...)   for j < T; 0 for T <= j < Tp
// (scale = 1 / sqrt(dh) > 0, so scaling after the max is the same softmax PyTorch computes on
// scale * s, with the row maximum subtracted as PyTorch does).
//
// Bindings: 0 params (Meta); 1 s [rows, Tp] (read-write).
// Grid: ceil(rows / 64) workgroups of 64 in any grid shape (linear index wid.x + wid.y * nwg.x);
// one invocation per row: on CPU adapters every load is per lane anyway, and rows are short
// (3 T + Tp loop steps, kept within gpu::LOOP_BUDGET, below llvmpipe's cap of 65,535, by
// ops::attention: T up to 15,000).

struct Meta { rows: u32, tokens: u32, padded: u32, scale: f32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read_write> s: array<f32>;

@compute @workgroup_size(64)
fn attention_softmax(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lane: u32) {
    let r = (wid.x + wid.y * nwg.x) * 64u + lane;
    if (r >= params.rows) { return; }
    let base = r * params.padded;
    var m = -3.4e38;
    for (var j = 0u; j < params.tokens; j++) {
        m = max(m, s[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < params.tokens; j++) {
        let e = exp((s[base + j] - m) * params.scale);
        s[base + j] = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for (var j = 0u; j < params.tokens; j++) {
        s[base + j] *= inv;
    }
    for (var j = params.tokens; j < params.padded; j++) {
        s[base + j] = 0.0;
    }
}
