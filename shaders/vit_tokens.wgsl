// vit_tokens: assemble the token sequence of a ViT: the class token then the patch
// embeddings, each plus its position embedding (already resampled to this grid on the CPU).
//   out[b, 0, :] = cls + pos[0, :];  out[b, 1 + i, :] = patches[b * P + i, :] + pos[1 + i, :]
//
// Bindings: 0 params (Meta); 1 patches [B * P, D]; 2 cls [D]; 3 pos [1 + P, D]; 4 out [B, 1 + P, D].
// Grid: ceil(B * (1 + P) * D / 256) workgroups split by `grid()`.

struct Meta { batch: u32, patches: u32, dim: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> patches: array<f32>;
@group(0) @binding(2) var<storage, read> cls: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn vit_tokens(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.total) { return; }
    let d = i % params.dim;
    let t = (i / params.dim) % (params.patches + 1u);
    let b = i / (params.dim * (params.patches + 1u));
    var v = pos[t * params.dim + d];
    if (t == 0u) {
        v += cls[d];
    } else {
        v += patches[(b * params.patches + t - 1u) * params.dim + d];
    }
    out[i] = v;
}
