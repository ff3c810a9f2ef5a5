//! Multi-head self-attention over a fused qkv projection.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::ops::split::{RowWindow, row_chunks};
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Meta {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
}

/// The most tokens one attention row holds (workgroup memory of `shaders/attention.wgsl`).
pub const MAX_TOKENS: usize = 4096;

/// `out[B, T, H*dh]` = softmax(q k^T / sqrt(dh)) v per head, from `qkv` [B, T, 3, H, dh].
pub fn attention(
    gpu: &Gpu,
    qkv: &Tensor,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "attention";
    if tokens > MAX_TOKENS {
        return Err(Error::shape(
            OP,
            format!("{tokens} tokens exceed the kernel's {MAX_TOKENS}; use smaller input images"),
        ));
    }
    check_len(OP, "qkv", qkv, batch * tokens * 3 * heads * head_dim)?;
    check_len(OP, "out", out, batch * tokens * heads * head_dim)?;
    let meta = Meta {
        tokens: tokens as u32,
        heads: heads as u32,
        head_dim: head_dim as u32,
        scale: 1.0 / (head_dim as f32).sqrt(),
    };
    let flops = 4 * (batch * heads * tokens * tokens * head_dim) as u64;
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if tokens > max_groups || heads > max_groups {
        return Err(Error::Limit {
            what: format!("attention grid of {tokens} tokens x {heads} heads"),
            needed: tokens.max(heads) as u64,
            limit: max_groups as u64,
            adapter: gpu.info.name.clone(),
            advice: "use smaller input images".into(),
        });
    }
    // Images are independent: a batch whose qkv or output exceeds one storage binding (or
    // the grid's batch dimension) runs as several launches over windows of whole images.
    let width = heads * head_dim;
    let windows = [
        RowWindow {
            what: "qkv",
            per_row: tokens * 3 * width,
        },
        RowWindow {
            what: "out",
            per_row: tokens * width,
        },
    ];
    let chunks = row_chunks(gpu, OP, batch, &windows, max_groups)?;
    let whole = chunks.len() == 1;
    let launches: Vec<_> = chunks
        .into_iter()
        .map(|r| {
            let (q, o) = if whole {
                (qkv.clone(), out.clone())
            } else {
                (
                    qkv.window(
                        r.start * tokens * 3 * width,
                        &[r.len() * tokens * 3 * width],
                    ),
                    out.window(r.start * tokens * width, &[r.len() * tokens * width]),
                )
            };
            (q, o, [tokens as u32, heads as u32, r.len() as u32])
        })
        .collect();
    let launches: Vec<_> = launches
        .iter()
        .map(|(q, o, g)| (meta, vec![q, o], *g))
        .collect();
    Ok(Dispatch::split(gpu, "attention", &[], &launches)?.with_flops(flops))
}
