//! Convolution, pooling and layout kernels of the CNNs. Activations are NHWC: every CNN tap is
//! then [N, H*W, C] as stored, and a 1x1 convolution is a plain matmul.

use crate::error::{Error, Result};
use crate::gpu::ops::{Epilogue, check_len};
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

/// The geometry of one convolution over an NHWC batch.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    /// (top, bottom, left, right).
    pub pads: [usize; 4],
}

impl ConvSpec {
    pub fn output(&self) -> (usize, usize) {
        let [t, b, l, r] = self.pads;
        (
            (self.height + t + b - self.kernel) / self.stride + 1,
            (self.width + l + r - self.kernel) / self.stride + 1,
        )
    }
}

/// PyTorch's conv weight [cout, cin/groups, k, k] -> the kernels' [k * k * cin/groups, cout]
/// (row (ky * k + kx) * cin_g + ci), so that consecutive output channels read consecutive
/// weights. For a 1x1 ungrouped conv this is the matmul's [cin, cout].
pub fn conv_weight_layout(
    w: &[f32],
    cout: usize,
    cin_g: usize,
    k: usize,
    _groups: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for co in 0..cout {
        for ci in 0..cin_g {
            for ky in 0..k {
                for kx in 0..k {
                    out[((ky * k + kx) * cin_g + ci) * cout + co] =
                        w[((co * cin_g + ci) * k + ky) * k + kx];
                }
            }
        }
    }
    out
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvMeta {
    batch: u32,
    height: u32,
    width: u32,
    cin: u32,
    out_h: u32,
    out_w: u32,
    n: u32,
    kernel: u32,
    stride: u32,
    pad_top: u32,
    pad_left: u32,
    groups: u32,
    has_bias: u32,
    has_scale: u32,
    has_res: u32,
    act: u32,
}

/// `out[B*Ho*Wo, Cout] = epilogue(conv(x))` for NHWC `x` and a weight in `conv_weight_layout`.
pub fn conv2d(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    spec: &ConvSpec,
    out: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    const OP: &str = "conv2d";
    let s = spec;
    if s.groups == 0
        || s.cin % s.groups != 0
        || s.cout % s.groups != 0
        || s.stride == 0
        || s.kernel == 0
    {
        return Err(Error::shape(OP, format!("invalid geometry {s:?}")));
    }
    let [t, b, l, r] = s.pads;
    if s.height + t + b < s.kernel || s.width + l + r < s.kernel {
        return Err(Error::shape(
            OP,
            format!(
                "a {0}x{0} kernel does not fit a padded {1}x{2} input",
                s.kernel, s.height, s.width
            ),
        ));
    }
    let (oh, ow) = s.output();
    let rows = s.batch * oh * ow;
    check_len(OP, "input", x, s.batch * s.height * s.width * s.cin)?;
    check_len(
        OP,
        "weight",
        weight,
        s.kernel * s.kernel * (s.cin / s.groups) * s.cout,
    )?;
    check_len(OP, "out", out, rows * s.cout)?;
    for (what, t, len) in [
        ("bias", epilogue.bias, s.cout),
        ("scale", epilogue.scale, s.cout),
        ("residual", epilogue.residual, rows * s.cout),
    ] {
        if let Some(t) = t {
            check_len(OP, what, t, len)?;
        }
    }
    let meta = ConvMeta {
        batch: s.batch as u32,
        height: s.height as u32,
        width: s.width as u32,
        cin: s.cin as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        n: s.cout as u32,
        kernel: s.kernel as u32,
        stride: s.stride as u32,
        pad_top: t as u32,
        pad_left: l as u32,
        groups: s.groups as u32,
        has_bias: epilogue.bias.is_some() as u32,
        has_scale: epilogue.scale.is_some() as u32,
        has_res: epilogue.residual.is_some() as u32,
        act: epilogue.act.code(),
    };
    let dummy = gpu.dummy();
    let tensors = [
        x,
        weight,
        epilogue.bias.unwrap_or(&dummy),
        epilogue.scale.unwrap_or(&dummy),
        epilogue.residual.unwrap_or(&dummy),
        out,
    ];
    let flops = 2 * (rows * s.cout * s.kernel * s.kernel * (s.cin / s.groups)) as u64;
    Ok(Dispatch::new(
        gpu,
        "conv2d_direct",
        &[],
        &meta,
        &tensors,
        grid(gpu, (rows * s.cout).div_ceil(64)),
    )?
    .with_flops(flops))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PoolMeta {
    batch: u32,
    height: u32,
    width: u32,
    channels: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    _pad: [u32; 3],
}

/// k x k max pooling with stride and symmetric padding over NHWC `x` of shape `[b, h, w, c]`.
pub fn max_pool2d(
    gpu: &Gpu,
    x: &Tensor,
    [b, h, w, c]: [usize; 4],
    kernel: usize,
    stride: usize,
    pad: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "max_pool2d";
    if h + 2 * pad < kernel || w + 2 * pad < kernel || stride == 0 || pad * 2 > kernel {
        return Err(Error::shape(
            OP,
            format!("kernel {kernel}, stride {stride}, pad {pad} do not fit {h}x{w}"),
        ));
    }
    let (oh, ow) = (
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    );
    check_len(OP, "input", x, b * h * w * c)?;
    check_len(OP, "out", out, b * oh * ow * c)?;
    let meta = PoolMeta {
        batch: b as u32,
        height: h as u32,
        width: w as u32,
        channels: c as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        kernel: kernel as u32,
        stride: stride as u32,
        pad: pad as u32,
        _pad: [0; 3],
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[x, out],
        grid(gpu, (b * oh * ow * c).div_ceil(64)),
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

/// `out[b, c]` = mean over positions of `x[b, p, c]`.
pub fn global_avg_pool(
    gpu: &Gpu,
    x: &Tensor,
    batch: usize,
    positions: usize,
    channels: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "global_avg_pool";
    check_len(OP, "input", x, batch * positions * channels)?;
    check_len(OP, "out", out, batch * channels)?;
    let meta = GapMeta {
        batch: batch as u32,
        positions: positions as u32,
        channels: channels as u32,
        _pad: 0,
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[x, out],
        grid(gpu, (batch * channels).div_ceil(64)),
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayoutMeta {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
}

/// NCHW `img` [B, C, H, W] -> NHWC `out`.
pub fn nchw_to_nhwc(gpu: &Gpu, img: &Tensor, out: &Tensor) -> Result<Dispatch> {
    const OP: &str = "nchw_to_nhwc";
    let [b, c, h, w] = img.shape[..] else {
        return Err(Error::shape(
            OP,
            format!("expected [B, C, H, W], got {:?}", img.shape),
        ));
    };
    check_len(OP, "out", out, b * c * h * w)?;
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
