// stats_tap_scalar: stats_tap for any C (C % 4 != 0 leaves rows unaligned for vec4 loads): the
// four channels of a lane are loaded one by one, indices clamped to the lane's valid channels
// so that no load leaves the row. Everything else, bindings and grid included, is in
// stats_tap_common.wgsl, prepended as a prelude.
//
// Binding 1: tap [B, P, C] as array<f32>.

@group(0) @binding(1) var<storage, read> tap: array<f32>;

// Channels base..base+valid-1 (1 <= valid <= 4); the rest repeat the last and are masked.
fn load4(base: u32, valid: u32) -> vec4<f32> {
    let last = base + valid - 1u;
    return vec4<f32>(tap[base], tap[min(base + 1u, last)], tap[min(base + 2u, last)],
                     tap[min(base + 3u, last)]);
}

fn load1(i: u32) -> f32 {
    return tap[i];
}

@compute @workgroup_size(8)
fn stats_tap_scalar(@builtin(local_invocation_index) lane: u32,
                    @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    tap_stats(lane, wid.x + wid.y * nwg.x);
}
