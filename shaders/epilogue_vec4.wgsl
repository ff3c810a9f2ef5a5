// Prelude after epilogue.wgsl: the epilogue of four adjacent columns 4 * c4 .. 4 * c4 + 3 at a
// time, for kernels that declare bias, scale and res as array<vec4<f32>> (N % 4 == 0) and
// store a vec4. On lavapipe every storage access is a loop over the 8 lanes with a bounds check
// per vector component access, so one vec4 load or store costs less than four scalar ones:
// ResNet-50's 1x1 convolutions on matmul_subgroup ran 2-17% faster with a vec4 store
// (benches/kernels.rs, Mesa 22.3). The arithmetic is the same as epilogue_f32.wgsl's.

fn epilogue4(acc: vec4<f32>, row: u32, c4: u32) -> vec4<f32> {
    var v = acc;
    if (HAS_BIAS) { v += bias[c4]; }
    if (HAS_SCALE) { v *= scale[c4]; }
    if (HAS_RES) { v += res[row * (params.n / 4u) + c4]; }
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT),
                     activate(v.w, ACT));
}
