// patch_im2col: cut an NCHW image batch into non-overlapping p x p patches, one row per patch,
// so that patch embedding (a conv with kernel = stride = p) becomes one matmul.
//   out[(b * gh + py) * gw + px, (c * p + ky) * p + kx] = img[b, c, py * p + ky, px * p + kx]
// The column order (c, ky, kx) is PyTorch's Conv2d weight layout flattened.
//
// Bindings: 0 params (Meta); 1 img [B, C, H, W]; 2 out [B * gh * gw, C * p * p].
// Grid: ceil(total / 256) workgroups split by `grid()`; one invocation per output element.

struct Meta { batch: u32, channels: u32, height: u32, width: u32, psize: u32, gh: u32, gw: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> img: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn patch_im2col(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.total) { return; }
    let p = params.psize;
    let cols = params.channels * p * p;
    let col = i % cols;
    let row = i / cols;
    let kx = col % p;
    let ky = (col / p) % p;
    let c = col / (p * p);
    let px = row % params.gw;
    let py = (row / params.gw) % params.gh;
    let b = row / (params.gw * params.gh);
    out[i] = img[((b * params.channels + c) * params.height + py * p + ky) * params.width + px * p + kx];
}
