// Prelude after epilogue.wgsl: the epilogue one output at a time, for kernels that declare
// bias, scale and res as array<f32>.

fn epilogue(acc: f32, row: u32, col: u32) -> f32 {
    var v = acc;
    if (HAS_BIAS) { v += bias[col]; }
    if (HAS_SCALE) { v *= scale[col]; }
    if (HAS_RES) { v += res[row * params.n + col]; }
    return activate(v, ACT);
}
