// max_pool2d: the max pooling of max_pool2d_common.wgsl (the prelude holds the kernel and its
// description), one channel per invocation: any C. ops::pool::max_pool2d takes max_pool2d_vec4
// where C % 4 == 0.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn load(i: u32) -> vec4<f32> { return vec4<f32>(x[i]); }

@compute @workgroup_size(64)
fn max_pool2d(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= params.batch * params.out_h * params.out_w * params.units) { return; }
    out[i] = window_max(i).x;
}
