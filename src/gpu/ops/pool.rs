//! Pooling of NHWC activations: max and average pooling with PyTorch's semantics
//! (ceil_mode=False, dilation 1, symmetric padding), and global average pooling
//! [B, H * W, C] -> [B, C].

use crate::error::{Error, Result};
use crate::gpu::ops::{check_len, check_loop_steps};
use crate::gpu::{Dispatch, Gpu, LOOP_BUDGET, Tensor, TextureCopy, grid};

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
    let meta = pool_meta(
        op,
        lanes,
        x,
        dims,
        (kernel, stride, pad),
        count_include_pad,
        out,
    )?;
    per_unit(gpu, kernel_name, &meta, x, out)
}

/// The launch of a pooling kernel that takes one unit (`meta.channels` counts them) per
/// invocation, 64 invocations per workgroup.
fn per_unit(
    gpu: &Gpu,
    kernel_name: &'static str,
    meta: &PoolMeta,
    x: &Tensor,
    out: &Tensor,
) -> Result<Dispatch> {
    let units = (meta.batch * meta.out_h * meta.out_w * meta.channels) as usize;
    Dispatch::new(
        gpu,
        kernel_name,
        &[],
        meta,
        &[x, out],
        grid(gpu, units.div_ceil(64)),
    )
}

/// The checked uniform of a pooling `op` whose kernel takes `lanes` adjacent channels per unit.
fn pool_meta(
    op: &'static str,
    lanes: usize,
    x: &Tensor,
    dims: [usize; 4],
    (kernel, stride, pad): (usize, usize, usize),
    count_include_pad: bool,
    out: &Tensor,
) -> Result<PoolMeta> {
    let (oh, ow) = pool_output(op, dims, kernel, stride, pad)?;
    // One invocation walks one window (its rows, and each row's cells): k (1 + k) loop steps.
    // (The texture max pool's per-pixel loop is checked where it is chosen.)
    check_loop_steps(
        op,
        &format!("a {kernel}x{kernel} window"),
        kernel.saturating_mul(1 + kernel),
        "no pooling window this wide is supported",
    )?;
    let [b, h, w, c] = dims;
    check_len(op, "input", x, b * h * w * c)?;
    check_len(op, "out", out, b * oh * ow * c)?;
    if b * h * w * c > u32::MAX as usize {
        return Err(Error::shape(
            op,
            "input over the 2^32 elements a kernel can index",
        ));
    }
    Ok(PoolMeta {
        batch: b as u32,
        height: h as u32,
        width: w as u32,
        channels: (c / lanes) as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        kernel: kernel as u32,
        stride: stride as u32,
        pad: pad as u32,
        count_include_pad: count_include_pad as u32,
        _pad: [0; 2],
    })
}

/// The kernels that compute a max pooling (shaders/max_pool2d_common.wgsl); `max_pool2d`
/// picks one per adapter and channel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxPoolVariant {
    /// `max_pool2d`: one channel per invocation, any C.
    Scalar,
    /// `max_pool2d_vec4`: four channels per invocation, C % 4 == 0.
    Vec4,
    /// `max_pool2d_texture`: one output pixel per invocation, all of its channels four at a
    /// time, read from a texture copy of x; C % 4 == 0. For adapters whose matmul reads
    /// textures (`Choices::reads_textures`). Runs as `Vec4` where the copy would exceed the
    /// texture limits or a pixel's loop would pass `gpu::LOOP_BUDGET` iterations.
    Texture,
}

impl MaxPoolVariant {
    pub const ALL: [MaxPoolVariant; 3] = [
        MaxPoolVariant::Scalar,
        MaxPoolVariant::Vec4,
        MaxPoolVariant::Texture,
    ];

    /// The one for this adapter and channel count: `Scalar` unless `c % 4 == 0`, then
    /// `Texture` where the matmul reads textures, else `Vec4`.
    pub fn pick(gpu: &Gpu, c: usize) -> MaxPoolVariant {
        if !c.is_multiple_of(4) {
            MaxPoolVariant::Scalar
        } else if gpu.choices().reads_textures() {
            MaxPoolVariant::Texture
        } else {
            MaxPoolVariant::Vec4
        }
    }

    /// Why this kernel cannot pool `c` channels, if it cannot.
    pub fn unsupported(self, c: usize) -> Option<String> {
        match self {
            MaxPoolVariant::Scalar => None,
            MaxPoolVariant::Vec4 | MaxPoolVariant::Texture if !c.is_multiple_of(4) => {
                Some(format!("{c} channels are not a multiple of 4"))
            }
            MaxPoolVariant::Vec4 | MaxPoolVariant::Texture => None,
        }
    }
}

/// `kernel` x `kernel` max pooling with `stride` and symmetric padding `pad` over NHWC `x` of
/// `[b, h, w, c]`, into NHWC `out` `[b, ho, wo, c]` (`pool_output`). Padded cells never win
/// (PyTorch pads with -inf); NaN propagates. ResNet's stem pool is (3, 2, 1). By the kernel
/// this adapter wants for `c` (`MaxPoolVariant::pick`).
pub fn max_pool2d(
    gpu: &Gpu,
    x: &Tensor,
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    let variant = MaxPoolVariant::pick(gpu, dims[3]);
    max_pool2d_with(gpu, variant, x, dims, kernel, stride, pad, out)
}

/// `max_pool2d` by the kernel given (tests run each).
#[allow(clippy::too_many_arguments)]
pub fn max_pool2d_with(
    gpu: &Gpu,
    variant: MaxPoolVariant,
    x: &Tensor,
    dims: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "max_pool2d";
    if let Some(why) = variant.unsupported(dims[3]) {
        return Err(Error::shape(
            OP,
            format!("{variant:?} kernel cannot run: {why}"),
        ));
    }
    let lanes = match variant {
        MaxPoolVariant::Scalar => 1,
        MaxPoolVariant::Vec4 | MaxPoolVariant::Texture => 4,
    };
    let meta = pool_meta(OP, lanes, x, dims, (kernel, stride, pad), false, out)?;
    match variant {
        MaxPoolVariant::Scalar => per_unit(gpu, "max_pool2d", &meta, x, out),
        MaxPoolVariant::Vec4 => per_unit(gpu, "max_pool2d_vec4", &meta, x, out),
        MaxPoolVariant::Texture => match max_pool_from_texture(gpu, &meta, x, out)? {
            Some(d) => Ok(d),
            None => per_unit(gpu, "max_pool2d_vec4", &meta, x, out),
        },
    }
}

/// `max_pool2d_texture` for the checked `meta` (vec4 units), with the copy of x into a scratch
/// texture; `None` where the copy would exceed the texture limits (or x's offset cannot start a
/// texel) or a pixel's loop would pass `LOOP_BUDGET` iterations (`units * (1 + k + k^2)`).
fn max_pool_from_texture(
    gpu: &Gpu,
    meta: &PoolMeta,
    x: &Tensor,
    out: &Tensor,
) -> Result<Option<Dispatch>> {
    let (units, k) = (meta.channels as usize, meta.kernel as usize);
    if units * (1 + k + k * k) > LOOP_BUDGET {
        return Ok(None);
    }
    let len = (meta.batch * meta.height * meta.width) as usize * units * 4;
    let format = wgpu::TextureFormat::Rgba32Float;
    let Some(copy) = TextureCopy::to_scratch(gpu, "max pool x", x, len, format) else {
        return Ok(None);
    };
    let pixels = (meta.batch * meta.out_h * meta.out_w) as usize;
    let groups = grid(gpu, pixels.div_ceil(8));
    Dispatch::with_texture_copy(
        gpu,
        "max_pool2d_texture",
        &[],
        meta,
        copy,
        0,
        &[out],
        groups,
    )
    .map(Some)
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
    // One invocation walks all positions of its channel: one loop step each.
    check_loop_steps(
        OP,
        &format!("{positions} positions to average"),
        positions,
        "use smaller input images",
    )?;
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
