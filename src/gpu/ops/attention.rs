//! Multi-head self-attention over a fused qkv projection.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
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
    Ok(Dispatch::new(
        gpu,
        "attention",
        &[],
        &meta,
        &[qkv, out],
        [tokens as u32, heads as u32, batch as u32],
    )?
    .with_flops(flops))
}
