// attention: multi-head scaled dot-product attention over the fused qkv projection.
//   out[b, t, h*dh + d] = sum_j softmax_j(q_t . k_j * scale) v_j[d]
//
// Bindings: 0 params (Meta); 1 qkv [B, T, 3, H, dh] (timm's qkv layout: q for all heads, then k, then v);
//           2 out [B, T, H * dh].
// Grid: (T, H, B); one workgroup of 64 invocations per query token and head. The T scores
// live in workgroup memory (T <= 4096). Softmax subtracts the row maximum (PyTorch does too).

struct Meta { tokens: u32, heads: u32, head_dim: u32, scale: f32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;
const MAX_TOKENS: u32 = 4096u;
var<workgroup> scores: array<f32, MAX_TOKENS>;
var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(64)
fn attention(@builtin(local_invocation_index) lane: u32,
             @builtin(workgroup_id) wid: vec3<u32>) {
    let t = wid.x;
    let h = wid.y;
    let b = wid.z;
    let width = params.heads * params.head_dim;
    let row_len = 3u * width;
    let q_base = (b * params.tokens + t) * row_len + h * params.head_dim;

    var local_max = -3.4e38;
    for (var j = lane; j < params.tokens; j += WG) {
        let k_base = (b * params.tokens + j) * row_len + width + h * params.head_dim;
        var s = 0.0;
        for (var d = 0u; d < params.head_dim; d++) {
            s += qkv[q_base + d] * qkv[k_base + d];
        }
        s *= params.scale;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    partial[lane] = local_max;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) { partial[lane] = max(partial[lane], partial[lane + s]); }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = lane; j < params.tokens; j += WG) {
        let e = exp(scores[j] - row_max);
        scores[j] = e;
        local_sum += e;
    }
    partial[lane] = local_sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) { partial[lane] += partial[lane + s]; }
        workgroupBarrier();
    }
    let inv_sum = 1.0 / partial[0];

    let out_base = (b * params.tokens + t) * width + h * params.head_dim;
    for (var d = lane; d < params.head_dim; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < params.tokens; j++) {
            acc += scores[j] * qkv[(b * params.tokens + j) * row_len + 2u * width + h * params.head_dim + d];
        }
        out[out_base + d] = acc * inv_sum;
    }
}
