// max_pool2d_vec4: the max pooling of max_pool2d_common.wgsl (the prelude holds the kernel and
// its description), four channels per invocation read and written as vec4 (C % 4 == 0): a
// quarter of the loads and index computations of max_pool2d. On lavapipe (2-core AMD EPYC),
// ResNet-50's stem pool at batch 8 (bench, alternated twice): 86 and 106 ms per batch with one
// channel per invocation and a branch per window cell, 69 and 74 ms here.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;

fn load(i: u32) -> vec4<f32> { return x[i]; }

@compute @workgroup_size(64)
fn max_pool2d_vec4(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.batch * params.out_h * params.out_w * params.units) { return; }
    out[i] = window_max(i);
}
