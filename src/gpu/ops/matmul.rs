//! Matrix multiplication with a fused epilogue, the workhorse of every model.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor};

/// The nonlinearity applied last in a fused epilogue (codes match `shaders/epilogue.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Act {
    #[default]
    None,
    Relu,
    Relu6,
    /// Exact GELU, x * Phi(x) (PyTorch's default `nn.GELU()`).
    Gelu,
    Silu,
    /// GELU with the tanh approximation (`nn.GELU(approximate='tanh')`).
    GeluTanh,
}

impl Act {
    pub fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::Relu => 1,
            Act::Relu6 => 2,
            Act::Gelu => 3,
            Act::Silu => 4,
            Act::GeluTanh => 5,
        }
    }

    /// The same function on the CPU, for references in tests.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Relu6 => v.clamp(0.0, 6.0),
            Act::Gelu => (0.5 * v as f64 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2))) as f32,
            Act::Silu => v / (1.0 + (-v).exp()),
            Act::GeluTanh => {
                let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
                0.5 * v * (1.0 + u.tanh())
            }
        }
    }
}

/// erf in f64 (for CPU references): W. J. Cody's rational approximations are overkill here;
/// a series/continued-fraction pair accurate to ~1e-15 suffices.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // Continued fraction for erfc, converging fast for |x| >= 2.5.
        let z = x.abs();
        let mut f = 0.0;
        for n in (1..60).rev() {
            f = n as f64 / 2.0 / (z + f);
        }
        let erfc = (-z * z).exp() / (z + f) / std::f64::consts::PI.sqrt();
        (1.0 - erfc).copysign(x)
    }
}

/// What the matmul does to each output before storing it:
/// `out = act(scale * (acc + bias) + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a Tensor>,
    pub scale: Option<&'a Tensor>,
    pub residual: Option<&'a Tensor>,
    pub act: Act,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulMeta {
    m: u32,
    n: u32,
    k: u32,
    a_stride: u32,
    has_bias: u32,
    has_scale: u32,
    has_res: u32,
    act: u32,
}

/// `out[M, N] = epilogue(A @ B)` with A's row `i` starting at element `i * a_stride` of `a`
/// (`a_stride = K` for a plain matrix) and B stored [K, N] (linear weights transposed at load).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    a_stride: usize,
    b: &Tensor,
    out: &Tensor,
    m: usize,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    const OP: &str = "matmul";
    let (k, n) = match b.shape.as_slice() {
        [k, n] => (*k, *n),
        s => return Err(Error::shape(OP, format!("B must be [K, N], got {s:?}"))),
    };
    if a_stride < k {
        return Err(Error::shape(
            OP,
            format!("A row stride {a_stride} is below K = {k}"),
        ));
    }
    if m > 0 {
        check_len(OP, "A", a, (m - 1) * a_stride + k)?;
    }
    check_len(OP, "out", out, m * n)?;
    let dummy = gpu.dummy();
    for (what, t, len) in [
        ("bias", epilogue.bias, n),
        ("scale", epilogue.scale, n),
        ("residual", epilogue.residual, m * n),
    ] {
        if let Some(t) = t {
            check_len(OP, what, t, len)?;
        }
    }
    let meta = MatmulMeta {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_stride: a_stride as u32,
        has_bias: epilogue.bias.is_some() as u32,
        has_scale: epilogue.scale.is_some() as u32,
        has_res: epilogue.residual.is_some() as u32,
        act: epilogue.act.code(),
    };
    let tensors = [
        a,
        b,
        epilogue.bias.unwrap_or(&dummy),
        epilogue.scale.unwrap_or(&dummy),
        epilogue.residual.unwrap_or(&dummy),
        out,
    ];
    let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
    Ok(
        Dispatch::new(gpu, "matmul_tiled", &[], &meta, &tensors, groups)?
            .with_flops(2 * (m * n * k) as u64),
    )
}
