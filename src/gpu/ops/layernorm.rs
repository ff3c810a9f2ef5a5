//! LayerNorm over the last dimension.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::ops::split::{RowWindow, row_chunks};
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
    // One workgroup per row over a 2-D grid; rows beyond one binding or grid are split.
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    let windows = [
        RowWindow {
            what: "x",
            per_row: cols,
        },
        RowWindow {
            what: "out",
            per_row: cols,
        },
    ];
    let chunks = row_chunks(gpu, OP, rows, &windows, max_groups * max_groups)?;
    let whole = chunks.len() == 1;
    let launches: Vec<_> = chunks
        .into_iter()
        .map(|r| {
            let (xw, ow) = if whole {
                (x.clone(), out.clone())
            } else {
                let len = r.len() * cols;
                (
                    x.window(r.start * cols, &[len]),
                    out.window(r.start * cols, &[len]),
                )
            };
            let meta = Meta {
                rows: r.len() as u32,
                cols: cols as u32,
                eps,
                _pad: 0,
            };
            (
                meta,
                vec![xw, weight.clone(), bias.clone(), ow],
                grid(gpu, r.len()),
            )
        })
        .collect();
    let launches: Vec<_> = launches
        .iter()
        .map(|(m, t, g)| (*m, t.iter().collect::<Vec<&Tensor>>(), *g))
        .collect();
    Dispatch::split(gpu, "layernorm", &[], &launches)
}
