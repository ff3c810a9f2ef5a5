// attention_merge: per-head outputs back to the token stream.
//   out[b, t, h * dh + d] = o[b * H + h, t, d]
//
// Bindings: 0 params (Meta); 1 o [B * H, T, dh]; 2 out [B, T, H * dh].
// Grid: ceil(B * T * H * dh / 64) workgroups of 64 in any grid shape (linear index
// wid.x + wid.y * nwg.x); one invocation per output element.

struct Meta { tokens: u32, heads: u32, head_dim: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> o: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn attention_merge(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lane: u32) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lane;
    if (i >= params.total) { return; }
    let dh = params.head_dim;
    let width = params.heads * dh;
    let d = i % dh;
    let h = (i / dh) % params.heads;
    let t = (i / width) % params.tokens;
    let b = i / (width * params.tokens);
    out[i] = o[((b * params.heads + h) * params.tokens + t) * dh + d];
}
