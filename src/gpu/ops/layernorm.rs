//! LayerNorm over the last dimension.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Meta {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// `out = LayerNorm(x)` over the last dimension of `x`, with affine `weight` and `bias` [C].
pub fn layernorm(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "layernorm";
    let cols = x.cols();
    let rows = x.rows();
    if weight.len() != cols || bias.len() != cols {
        return Err(Error::shape(
            OP,
            format!(
                "weight {:?} and bias {:?} must have {cols} elements",
                weight.shape, bias.shape
            ),
        ));
    }
    check_len(OP, "out", out, rows * cols)?;
    let meta = Meta {
        rows: rows as u32,
        cols: cols as u32,
        eps,
        _pad: 0,
    };
    Dispatch::new(
        gpu,
        "layernorm",
        &[],
        &meta,
        &[x, weight, bias, out],
        grid(gpu, rows),
    )
}
