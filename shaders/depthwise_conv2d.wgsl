// depthwise_conv2d: per-channel kh x kw convolution of NHWC activations (groups = Cin = Cout)
// with the fused epilogue, loading from storage buffers; the body, bindings and grid are in
// depthwise_conv2d_common.wgsl, prepended as a prelude.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
// The weights' element type: f32, or f16 with --f16-weights (gpu::shaders::source).
alias W = f32;
@group(0) @binding(2) var<storage, read> w: array<vec4<W>>;

fn load_x(i: u32) -> vec4<f32> {
    return x[i];
}

fn load_w(i: u32) -> vec4<f32> {
    return vec4<f32>(w[i]);
}

@compute @workgroup_size(64)
fn depthwise_conv2d(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    depthwise_block(gid.x + gid.y * nwg.x * 64u);
}
