// residual_buffer: binding 5 of the vec4 epilogue (epilogue_vec4.wgsl), the residual [M, N] read
// as vec4 from its storage buffer; residual_texture.wgsl is the texture kernels' twin. Prelude
// of matmul_subgroup, conv2d_subgroup and depthwise_conv2d.

@group(0) @binding(5) var<storage, read> res: array<vec4<f32>>;

fn keep_res() { _ = &res; }

fn load_res(i: u32) -> vec4<f32> { return res[i]; }
