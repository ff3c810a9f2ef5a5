// Prelude after epilogue.wgsl: the epilogue of four adjacent columns 4 * c4 .. 4 * c4 + 3 at a
// time, for kernels that declare bias, scale and res as array<vec4<f32>> (N % 4 == 0) and
// store a vec4. On lavapipe every storage access is a loop over the 8 lanes with a bounds check
// per vector component access, so one vec4 load or store costs less than four scalar ones:
// ResNet-50's 1x1 convolutions on matmul_subgroup ran 2-17% faster with a vec4 store
// (benches/kernels.rs, Mesa 22.3). The arithmetic is the same as epilogue_f32.wgsl's.

// The per-column terms of columns 4 * c4 .., loaded once by a kernel that stores many rows of
// the same columns: on llvmpipe a storage load cannot be hoisted past the stores to `out` (the
// bindings may alias), so a load in every row's epilogue is done again for every row (ResNet-50's
// 1x1 convolutions with K = 64 spent 80 of 528 loads per workgroup there). Loaded once per
// column instead (lavapipe, 2-core AMD EPYC, batch 8, alternated): ResNet-50's matmuls 1552 and
// 1680 -> 1302 and 1395 ms per batch, its convolutions 1483 and 1636 -> 1313 and 1437; ViT-B's
// matmuls 11.1 -> 10.0 s.
struct Cols4 { bias: vec4<f32>, scale: vec4<f32>, }

fn cols4(c4: u32) -> Cols4 {
    var t = Cols4(vec4<f32>(0.0), vec4<f32>(1.0));
    if (HAS_BIAS) { t.bias = bias[c4]; }
    if (HAS_SCALE) { t.scale = scale[c4]; }
    return t;
}

// `t` = cols4(c4).
fn epilogue4(acc: vec4<f32>, row: u32, c4: u32, t: Cols4) -> vec4<f32> {
    var v = acc;
    if (HAS_BIAS) { v += t.bias; }
    if (HAS_SCALE) { v *= t.scale; }
    if (HAS_RES) { v += load_res(row * (params.n / 4u) + c4); }
    return vec4<f32>(activate(v.x, ACT), activate(v.y, ACT), activate(v.z, ACT),
                     activate(v.w, ACT));
}
