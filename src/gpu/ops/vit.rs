//! The two ViT-specific kernels: cutting images into patches, and assembling the tokens.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Im2colMeta {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    psize: u32,
    gh: u32,
    gw: u32,
    total: u32,
}

/// Rows of p x p patches, `[B * gh * gw, C * p * p]`, from an NCHW batch; trailing pixels
/// that do not fill a patch are dropped, as a stride-p convolution does.
pub fn patch_im2col(gpu: &Gpu, img: &Tensor, patch: usize, out: &Tensor) -> Result<Dispatch> {
    const OP: &str = "patch_im2col";
    let [b, c, h, w] = img.shape[..] else {
        return Err(Error::shape(
            OP,
            format!("image batch must be [B, C, H, W], got {:?}", img.shape),
        ));
    };
    let (gh, gw) = (h / patch, w / patch);
    if gh == 0 || gw == 0 {
        return Err(Error::shape(
            OP,
            format!("image {h}x{w} is smaller than one {patch}x{patch} patch"),
        ));
    }
    let total = b * gh * gw * c * patch * patch;
    check_len(OP, "out", out, total)?;
    let meta = Im2colMeta {
        batch: b as u32,
        channels: c as u32,
        height: h as u32,
        width: w as u32,
        psize: patch as u32,
        gh: gh as u32,
        gw: gw as u32,
        total: total as u32,
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[img, out],
        grid(gpu, total.div_ceil(256)),
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TokensMeta {
    batch: u32,
    patches: u32,
    dim: u32,
    total: u32,
}

/// `out[B, 1 + P, D]`: class token then patch embeddings, plus position embeddings `pos`.
pub fn vit_tokens(
    gpu: &Gpu,
    patches: &Tensor,
    cls: &Tensor,
    pos: &Tensor,
    batch: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "vit_tokens";
    let dim = cls.len();
    let p = patches.len() / (batch * dim).max(1);
    if patches.len() != batch * p * dim || pos.len() != (p + 1) * dim {
        return Err(Error::shape(
            OP,
            format!(
                "patches {:?}, cls {:?} and pos {:?} disagree for batch {batch}",
                patches.shape, cls.shape, pos.shape
            ),
        ));
    }
    let total = batch * (p + 1) * dim;
    check_len(OP, "out", out, total)?;
    let meta = TokensMeta {
        batch: batch as u32,
        patches: p as u32,
        dim: dim as u32,
        total: total as u32,
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[patches, cls, pos, out],
        grid(gpu, total.div_ceil(256)),
    )
}
