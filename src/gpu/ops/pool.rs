//! Pooling of NHWC activations: max and average pooling with PyTorch's semantics
//! (ceil_mode=False, dilation 1, symmetric padding), and global average pooling
//! [B, H * W, C] -> [B, C].

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolMeta {
    batch: u32,
    height: u32,
    width: u32,
    /// Channels, or vec4 of channels for `max_pool2d_vec4` (`pool`'s units).
    channels: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    count_include_pad: u32,
    _pad: [u32; 2],
}

/// Output size of a k x k pooling window with stride and symmetric padding, checked as
/// PyTorch checks it (pad <= k / 2, so every window holds an input cell).
pub fn pool_output(
    op: &str,
    [b, h, w, c]: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<(usize, usize)> {
    if b == 0 || h == 0 || w == 0 || c == 0 {
        return Err(Error::shape(
            op,
            format!("empty input [{b}, {h}, {w}, {c}]"),
        ));
    }
    if kernel == 0 || stride == 0 {
        return Err(Error::shape(
            op,
            format!("kernel {kernel} and stride {stride} must be at least 1"),
        ));
    }
    if pad * 2 > kernel {
        return Err(Error::shape(
            op,
            format!("padding {pad} is over half the kernel {kernel}"),
        ));
    }
    if h + 2 * pad < kernel || w + 2 * pad < kernel {
        return Err(Error::shape(
            op,
            format!("a {kernel}x{kernel} window does not fit the padded {h}x{w} input (pad {pad})"),
        ));
    }
    Ok((
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    ))
}

/// Pooling `op` by `kernel_name`, whose invocations each take `lanes` adjacent channels (`c`
/// is a multiple of it; `PoolMeta::channels` counts those units).
#[allow(clippy::too_many_arguments)]
fn pool(
    gpu: &Gpu,
    op: &'static str,
    (kernel_name, lanes): (&'static str, usize),
    x: &Tensor,
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
    out: &Tensor,
) -> Result<Dispatch> {
    let (oh, ow) = pool_output(op, dims, kernel, stride, pad)?;
    let [b, h, w, c] = dims;
    check_len(op, "input", x, b * h * w * c)?;
    check_len(op, "out", out, b * oh * ow * c)?;
    if b * h * w * c > u32::MAX as usize {
        return Err(Error::shape(
            op,
            "input over the 2^32 elements a kernel can index",
        ));
    }
    let units = c / lanes;
    let meta = PoolMeta {
        batch: b as u32,
        height: h as u32,
        width: w as u32,
        channels: units as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        kernel: kernel as u32,
        stride: stride as u32,
        pad: pad as u32,
        count_include_pad: count_include_pad as u32,
        _pad: [0; 2],
    };
    Dispatch::new(
        gpu,
        kernel_name,
        &[],
        &meta,
        &[x, out],
        grid(gpu, (b * oh * ow * units).div_ceil(64)),
    )
}

/// `kernel` x `kernel` max pooling with `stride` and symmetric padding `pad` over NHWC `x` of
/// `[b, h, w, c]`, into NHWC `out` `[b, ho, wo, c]` (`pool_output`). Padded cells never win
/// (PyTorch pads with -inf); NaN propagates. ResNet's stem pool is (3, 2, 1). Four channels
/// per invocation where `c % 4 == 0` (`max_pool2d_vec4`).
pub fn max_pool2d(
    gpu: &Gpu,
    x: &Tensor,
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    // Four channels per invocation as vec4 where the channels allow
    // (shaders/max_pool2d_common.wgsl).
    let by = if dims[3].is_multiple_of(4) {
        ("max_pool2d_vec4", 4)
    } else {
        ("max_pool2d", 1)
    };
    pool(
        gpu,
        "max_pool2d",
        by,
        x,
        dims,
        kernel,
        stride,
        pad,
        false,
        out,
    )
}

/// `kernel` x `kernel` average pooling as `max_pool2d`; the divisor is kernel^2 when
/// `count_include_pad` (PyTorch's default) and the number of cells inside the image otherwise.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(
    gpu: &Gpu,
    x: &Tensor,
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
    out: &Tensor,
) -> Result<Dispatch> {
    pool(
        gpu,
        "avg_pool2d",
        ("avg_pool2d", 1),
        x,
        dims,
        kernel,
        stride,
        pad,
        count_include_pad,
        out,
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GapMeta {
    batch: u32,
    positions: u32,
    channels: u32,
    _pad: u32,
}

/// `out[b, c]` = mean over the `positions` (H * W) of NHWC `x[b, p, c]`.
pub fn global_avg_pool(
    gpu: &Gpu,
    x: &Tensor,
    batch: usize,
    positions: usize,
    channels: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "global_avg_pool";
    if positions == 0 {
        return Err(Error::shape(OP, "no positions to average"));
    }
    check_len(OP, "input", x, batch * positions * channels)?;
    check_len(OP, "out", out, batch * channels)?;
    if batch * positions * channels > u32::MAX as usize {
        return Err(Error::shape(
            OP,
            "input over the 2^32 elements a kernel can index",
        ));
    }
    let meta = GapMeta {
        batch: batch as u32,
        positions: positions as u32,
        channels: channels as u32,
        _pad: 0,
    };
    Ok(Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[x, out],
        grid(gpu, (batch * channels).div_ceil(64)),
    )?
    .with_flops((batch * positions * channels) as u64))
}
