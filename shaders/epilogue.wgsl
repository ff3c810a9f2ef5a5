// Shared prelude (prepended by the shader registry, never compiled alone): the activation
// functions and the pipeline constants of the fused epilogue of matmul and convolution kernels,
//   out[row, col] = act(scale[col] * (acc + bias[col]) + res[row, col]),
// each term only when its pipeline constant is set. The epilogue itself comes in one of two
// forms, each a prelude that follows this one: epilogue_f32.wgsl (one output at a time, the
// bindings declared as array<f32>) and epilogue_vec4.wgsl (four adjacent columns at a time, the
// bindings declared as array<vec4<f32>>).
//
// A kernel with an epilogue declares, under these names:
//   params.n   (a u32 field of its Meta)
//   bias [N], scale [N]  (read-only storage, element type as its form says)
//   res [M, N]  (the same, or a texture: residual_buffer.wgsl and residual_texture.wgsl)
// and `keep_res()` (which keeps `res` in the layout however it is bound), and calls
// `epilogue_bindings()` in its entry point. `scale` is LayerScale (ViT, ConvNeXt); `res`
// the residual stream (ResNet adds it before its ReLU, ViTs after LayerScale with act = none).
//
// The terms and the activation are pipeline constants (ops::Epilogue::constants sets all four;
// the defaults, a bare product, only let the kernels compile alone), not uniform
// flags: llvmpipe runs both sides of every branch under a lane mask, so with a uniform
// activation code every store computed all five activations (erf, exp, tanh included).
// Compiled out instead, ResNet-50's convolutions and matmuls ran 6-11% faster (lavapipe).

override HAS_BIAS: bool = false;
override HAS_SCALE: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;

const ACT_NONE: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_RELU6: u32 = 2u;
const ACT_GELU: u32 = 3u;
const ACT_SILU: u32 = 4u;
const ACT_GELU_TANH: u32 = 5u;

// erf by Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, so GELU stays within
// f32 rounding of PyTorch's exact (erf) GELU at the magnitudes activations take.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-z * z);
    return select(y, -y, x < 0.0);
}

fn activate(v: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return max(v, 0.0); }
        case 2u: { return clamp(v, 0.0, 6.0); }
        case 3u: { return 0.5 * v * (1.0 + erf_approx(v * 0.7071067811865476)); }
        case 4u: { return v / (1.0 + exp(-v)); }
        case 5u: {
            let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
            return 0.5 * v * (1.0 + tanh(u));
        }
        default: { return v; }
    }
}

// Keeps the three bindings in the pipeline layout when their terms are compiled out (the host
// binds a dummy there).
fn epilogue_bindings() {
    _ = &bias;
    _ = &scale;
    keep_res();
}
