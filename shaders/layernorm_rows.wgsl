// layernorm_rows: the per-row LayerNorm of layernorm_rows_common.wgsl (the prelude holds the
// kernel and its description) reading x, weight and bias from storage buffers.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<vec4<f32>>;

fn load_x(i: u32) -> vec4<f32> { return x[i]; }
fn load_w(j: u32) -> vec4<f32> { return weight[j]; }
fn load_b(j: u32) -> vec4<f32> { return bias[j]; }

@compute @workgroup_size(8)
fn layernorm_rows(@builtin(local_invocation_index) lane: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    normalise_rows(lane, wid.x + wid.y * nwg.x);
}
