// stats_tap: the one-pass statistics of one batch of a tap [B, P, C] with C % 4 == 0, the tap
// read as vec4 (one 16-byte load per lane and position). Everything else, bindings and grid
// included, is in stats_tap_common.wgsl, prepended as a prelude.
//
// Binding 1: tap [B, P, C] as array<vec4<f32>>.

@group(0) @binding(1) var<storage, read> tap: array<vec4<f32>>;

// Channels base..base+3 (base % 4 == 0 here, as C % 4 == 0); `valid` is 4 or the lane is idle.
fn load4(base: u32, valid: u32) -> vec4<f32> {
    return tap[base / 4u];
}

fn load1(i: u32) -> f32 {
    return tap[i / 4u][i % 4u];
}

@compute @workgroup_size(8)
fn stats_tap(@builtin(local_invocation_index) lane: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    tap_stats(lane, wid.x + wid.y * nwg.x);
}
