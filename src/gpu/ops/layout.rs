//! Layout changes: the image loader's NCHW batch -> the NHWC activations of the CNN kernels.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayoutMeta {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
}

/// NCHW `img` (its shape must be `[B, C, H, W]`) -> NHWC `out` `[B, H, W, C]`.
pub fn nchw_to_nhwc(gpu: &Gpu, img: &Tensor, out: &Tensor) -> Result<Dispatch> {
    const OP: &str = "nchw_to_nhwc";
    let [b, c, h, w] = img.shape[..] else {
        return Err(Error::shape(
            OP,
            format!("expected [B, C, H, W], got {:?}", img.shape),
        ));
    };
    check_len(OP, "out", out, b * c * h * w)?;
    if b * c * h * w > u32::MAX as usize {
        return Err(Error::shape(
            OP,
            "input over the 2^32 elements a kernel can index",
        ));
    }
    let meta = LayoutMeta {
        batch: b as u32,
        channels: c as u32,
        height: h as u32,
        width: w as u32,
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[img, out],
        grid(gpu, (b * c * h * w).div_ceil(256)),
    )
}
