// global_avg_pool: out[b, c] = mean over the P positions of x[b, p, c] (NHWC, P = H * W).
// Bindings: 0 params (Meta); 1 x [B, P, C]; 2 out [B, C].
// Grid: ceil(B * C / 64) workgroups split by `grid()`; one invocation per output, consecutive
// invocations read consecutive channels. One loop step per position: ops::pool refuses
// P > gpu::LOOP_BUDGET (llvmpipe cuts an invocation's loops short after 65,535 steps).

struct Meta { batch: u32, positions: u32, channels: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn global_avg_pool(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.batch * params.channels) { return; }
    let c = i % params.channels;
    let b = i / params.channels;
    var acc = 0.0;
    for (var p = 0u; p < params.positions; p++) {
        acc += x[(b * params.positions + p) * params.channels + c];
    }
    out[i] = acc / f32(params.positions);
}
