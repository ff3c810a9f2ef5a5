// nchw_to_nhwc: out[b, y, x, c] = img[b, c, y, x], the layout change from the image loader's
// NCHW batch to the channels-last activations every CNN kernel uses.
// Bindings: 0 params (Meta); 1 img [B, C, H, W]; 2 out [B, H, W, C].
// Grid: ceil(total / 256) workgroups split by `grid()`.

struct Meta { batch: u32, channels: u32, height: u32, width: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> img: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn nchw_to_nhwc(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let hw = params.height * params.width;
    if (i >= params.batch * params.channels * hw) { return; }
    let c = i % params.channels;
    let pixel = (i / params.channels) % hw;
    let b = i / (params.channels * hw);
    out[i] = img[(b * params.channels + c) * hw + pixel];
}
