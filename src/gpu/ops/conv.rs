//! 2-D convolution of NHWC activations ([B, H, W, C], channels contiguous), so that every CNN
//! tap is [N, P = H * W, C] as stored and a 1x1 convolution is a plain matmul.
//!
//! Weight layout. Every convolution kernel reads its weight in "HWIO" order,
//! `[kh, kw, Cin/groups, Cout]`: row `(ky * kw + kx) * cin_g + ci` of the implicit GEMM's B
//! matrix, output channels contiguous. `conv_weight_layout` converts PyTorch's
//! `[Cout, Cin/groups, kh, kw]` at load. This is the matmul's `[Cin, Cout]` for a 1x1
//! convolution, and `[kh, kw, C]` for a depthwise one. Fold BatchNorm into the PyTorch-layout
//! weight first (`fold_batchnorm`), then convert.
//!
//! Padding is (top, bottom, left, right) so that PyTorch's symmetric padding and TensorFlow's
//! "SAME" (the odd pixel bottom/right, `same_padding`) are both expressed.
//!
//! A LayerNorm over channels of an NHWC activation (ConvNeXt) is `ops::layernorm` with
//! rows = B * H * W; no kernel of its own.

use crate::error::{Error, Result};
use crate::gpu::ops::matmul::tiled_loop_steps;
use crate::gpu::ops::texture_launch::{ATexels, texture_dispatch};
use crate::gpu::ops::{Epilogue, check_len, check_loop_steps, matmul};
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

/// Output pixels and channels per workgroup of conv2d_subgroup (its `PIXELS` and `CHANNELS`; a
/// unit test checks they agree). The grid must be exact: see `ops::SUBGROUP_ROWS`.
pub const SUBGROUP_PIXELS: usize = 40;
pub const SUBGROUP_CHANNELS: usize = 64;

/// The geometry of one 2-D convolution over an NHWC batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub cin: usize,
    pub cout: usize,
    /// (kh, kw): non-square kernels occur in Inception (1x7, 7x1).
    pub kernel: [usize; 2],
    pub stride: usize,
    pub dilation: usize,
    pub groups: usize,
    /// (top, bottom, left, right).
    pub pads: [usize; 4],
}

impl ConvSpec {
    /// A convolution with symmetric padding `pad` (PyTorch's `padding=pad`), dilation 1.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        height: usize,
        width: usize,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        groups: usize,
    ) -> ConvSpec {
        ConvSpec {
            batch,
            height,
            width,
            cin,
            cout,
            kernel: [kernel, kernel],
            stride,
            dilation: 1,
            groups,
            pads: [pad; 4],
        }
    }

    /// The same convolution with TensorFlow "SAME" padding for its input size.
    pub fn with_same_padding(mut self) -> ConvSpec {
        self.pads = same_padding(
            self.height,
            self.width,
            self.kernel,
            self.stride,
            self.dilation,
        );
        self
    }

    /// Cin / groups: the input channels each output channel sees.
    pub fn cin_per_group(&self) -> usize {
        self.cin / self.groups.max(1)
    }

    /// The rows of the implicit GEMM's B: kh * kw * Cin / groups.
    pub fn gemm_k(&self) -> usize {
        self.kernel[0] * self.kernel[1] * self.cin_per_group()
    }

    /// Elements of the weight in `conv_weight_layout`: kh * kw * Cin / groups * Cout.
    pub fn weight_len(&self) -> usize {
        self.gemm_k() * self.cout
    }

    /// groups == Cin == Cout: one kxk filter per channel.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.cin && self.groups == self.cout
    }

    /// (Ho, Wo) = (floor((H + top + bottom - dil * (kh - 1) - 1) / stride) + 1, likewise for W),
    /// after checking that the geometry is valid.
    pub fn output(&self) -> Result<(usize, usize)> {
        let [kh, kw] = self.kernel;
        let [top, bottom, left, right] = self.pads;
        let bad = |why: String| Err(Error::shape("conv2d", format!("{why} ({self:?})")));
        if self.batch == 0 || self.height == 0 || self.width == 0 {
            return bad("empty input".into());
        }
        if kh == 0 || kw == 0 || self.stride == 0 || self.dilation == 0 {
            return bad("kernel, stride and dilation must be at least 1".into());
        }
        if self.groups == 0 || self.cin == 0 || self.cout == 0 {
            return bad("channels and groups must be at least 1".into());
        }
        if !self.cin.is_multiple_of(self.groups) || !self.cout.is_multiple_of(self.groups) {
            return bad(format!(
                "Cin = {} and Cout = {} must both be multiples of groups = {}",
                self.cin, self.cout, self.groups
            ));
        }
        let span_h = self.dilation * (kh - 1) + 1;
        let span_w = self.dilation * (kw - 1) + 1;
        if self.height + top + bottom < span_h || self.width + left + right < span_w {
            return bad(format!(
                "a {kh}x{kw} kernel (dilation {}) does not fit the padded {}x{} input",
                self.dilation, self.height, self.width
            ));
        }
        Ok((
            (self.height + top + bottom - span_h) / self.stride + 1,
            (self.width + left + right - span_w) / self.stride + 1,
        ))
    }

    /// Multiply-adds times two.
    pub fn flops(&self) -> u64 {
        let (ho, wo) = self.output().unwrap_or((0, 0));
        2 * (self.batch * ho * wo) as u64 * self.cout as u64 * self.gemm_k() as u64
    }
}

/// TensorFlow "SAME" padding of one dimension: (before, after) with the odd pixel after, so
/// that the output has ceil(size / stride) elements:
/// total = max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0).
pub fn same_pads(size: usize, kernel: usize, stride: usize, dilation: usize) -> (usize, usize) {
    let out = size.div_ceil(stride.max(1));
    let span = (kernel.max(1) - 1) * dilation + 1;
    let total = ((out.max(1) - 1) * stride + span).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// TensorFlow "SAME" padding of an H x W input as (top, bottom, left, right).
pub fn same_padding(
    height: usize,
    width: usize,
    [kh, kw]: [usize; 2],
    stride: usize,
    dilation: usize,
) -> [usize; 4] {
    let (top, bottom) = same_pads(height, kh, stride, dilation);
    let (left, right) = same_pads(width, kw, stride, dilation);
    [top, bottom, left, right]
}

/// PyTorch's conv weight `[Cout, Cin/groups, kh, kw]` -> the kernels' HWIO
/// `[kh, kw, Cin/groups, Cout]`. `shape` is PyTorch's `[cout, cin_g, kh, kw]`.
pub fn conv_weight_layout(w: &[f32], shape: [usize; 4]) -> Result<Vec<f32>> {
    let [cout, cin_g, kh, kw] = shape;
    if w.len() != cout * cin_g * kh * kw {
        return Err(Error::shape(
            "conv_weight_layout",
            format!("{} elements given for a weight of shape {shape:?}", w.len()),
        ));
    }
    let mut out = vec![0.0; w.len()];
    for co in 0..cout {
        for ci in 0..cin_g {
            for ky in 0..kh {
                for kx in 0..kw {
                    out[((ky * kw + kx) * cin_g + ci) * cout + co] =
                        w[((co * cin_g + ci) * kh + ky) * kw + kx];
                }
            }
        }
    }
    Ok(out)
}

/// Fold inference BatchNorm into the preceding convolution, in PyTorch layout (`weight`
/// `[Cout, ...]`, `bias` `[Cout]`, zeros for a conv without bias), computed in f64:
/// s = gamma / sqrt(var + eps); w' = w * s per output channel; b' = (b - mean) * s + beta.
pub fn fold_batchnorm(
    weight: &mut [f32],
    bias: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<()> {
    let cout = bias.len();
    for (what, len) in [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("mean", mean.len()),
        ("var", var.len()),
    ] {
        if len != cout {
            return Err(Error::shape(
                "fold_batchnorm",
                format!("BatchNorm {what} has {len} elements, the conv has {cout} outputs"),
            ));
        }
    }
    if cout == 0 || !weight.len().is_multiple_of(cout) {
        return Err(Error::shape(
            "fold_batchnorm",
            format!("a weight of {} elements is not [{cout}, ...]", weight.len()),
        ));
    }
    let per_out = weight.len() / cout;
    for o in 0..cout {
        let s = gamma[o] as f64 / (var[o] as f64 + eps as f64).sqrt();
        for v in &mut weight[o * per_out..(o + 1) * per_out] {
            *v = (*v as f64 * s) as f32;
        }
        bias[o] = ((bias[o] as f64 - mean[o] as f64) * s + beta[o] as f64) as f32;
    }
    Ok(())
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
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    dilation: u32,
    pad_top: u32,
    pad_left: u32,
    groups: u32,
    m: u32,
    k: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DepthwiseMeta {
    batch: u32,
    height: u32,
    width: u32,
    n: u32,
    out_h: u32,
    out_w: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    dilation: u32,
    pad_top: u32,
    pad_left: u32,
}

/// The kernels that compute a convolution; `conv2d()` picks one, `conv2d_with()` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvVariant {
    /// `shaders/conv2d_tiled.wgsl`: implicit GEMM with workgroup-memory tiles, for real GPUs;
    /// any geometry.
    Tiled,
    /// `shaders/conv2d_subgroup.wgsl`: implicit GEMM on one 8-lane subgroup per workgroup,
    /// for CPU adapters (lavapipe). Needs SUBGROUP with a subgroup size fixed at 8 and
    /// Cout / groups % 4 == 0.
    Subgroup,
    /// `shaders/conv2d_texture.wgsl`: the subgroup kernel reading x and the weights from
    /// textures that each launch first copies them into (as `MatmulVariant::Texture`); needs
    /// what `Subgroup` needs, and runs `Subgroup` where a texture would exceed the limits.
    Texture,
    /// `shaders/depthwise_conv2d.wgsl`: groups == Cin == Cout with C % 4 == 0.
    Depthwise,
    /// `shaders/depthwise_conv2d_texture.wgsl`: the depthwise kernel reading x and the weights
    /// from textures that each launch first copies them into (as `Texture`); needs what
    /// `Depthwise` needs, and runs `Depthwise` where a texture would exceed the limits.
    DepthwiseTexture,
    /// A 1x1, stride-1, unpadded, ungrouped convolution is `ops::matmul` over the B*H*W pixels
    /// (which picks its own kernel per adapter).
    Matmul,
}

impl ConvVariant {
    pub const ALL: [ConvVariant; 6] = [
        ConvVariant::Tiled,
        ConvVariant::Subgroup,
        ConvVariant::Texture,
        ConvVariant::Depthwise,
        ConvVariant::DepthwiseTexture,
        ConvVariant::Matmul,
    ];

    /// The most loop steps one invocation runs for `spec` (see `gpu::LOOP_BUDGET`): the
    /// subgroup body one per kernel row and, per tap, one plus one per 8 input channels and
    /// per remaining channel (with `row_taps`, one per row plus one per 8 elements of its
    /// run); the depthwise body one per kernel row plus one per tap; the tiled body
    /// `tiled_loop_steps` of its depth. `None` for `Matmul`: `ops::matmul` checks the kernel
    /// it runs.
    pub fn loop_steps(self, spec: &ConvSpec) -> Option<usize> {
        let [kh, kw] = spec.kernel;
        let cin_g = spec.cin_per_group();
        Some(match self {
            ConvVariant::Tiled => tiled_loop_steps(spec.gemm_k()),
            ConvVariant::Subgroup | ConvVariant::Texture if row_taps(spec) => {
                kh * (1 + (kw * spec.cin).div_ceil(8))
            }
            ConvVariant::Subgroup | ConvVariant::Texture => {
                kh * (1 + kw * (1 + cin_g / 8 + cin_g % 8))
            }
            ConvVariant::Depthwise | ConvVariant::DepthwiseTexture => kh * (1 + kw),
            ConvVariant::Matmul => return None,
        })
    }

    /// Why this variant cannot compute `spec` on `gpu`, or `None` if it can.
    pub fn unsupported(self, gpu: &Gpu, spec: &ConvSpec) -> Option<String> {
        match self {
            ConvVariant::Tiled => None,
            ConvVariant::Subgroup | ConvVariant::Texture => {
                let (min, max) = (gpu.info.subgroup_min_size, gpu.info.subgroup_max_size);
                let cout_g = spec.cout / spec.groups.max(1);
                if !gpu.has_subgroups() {
                    Some(format!("adapter '{}' has no subgroups", gpu.info.name))
                } else if (min, max) != (8, 8) {
                    // The workgroup of 8 must be exactly one subgroup for its broadcasts.
                    Some(format!(
                        "adapter '{}' has subgroup sizes {min}..{max}, the kernel needs exactly 8",
                        gpu.info.name
                    ))
                } else if !cout_g.is_multiple_of(4) {
                    Some(format!(
                        "Cout / groups = {cout_g} is not a multiple of 4 (weights are read as vec4)"
                    ))
                } else {
                    None
                }
            }
            ConvVariant::Depthwise | ConvVariant::DepthwiseTexture => {
                if !spec.is_depthwise() {
                    Some(format!(
                        "not depthwise: groups = {}, Cin = {}, Cout = {}",
                        spec.groups, spec.cin, spec.cout
                    ))
                } else if !spec.cin.is_multiple_of(4) {
                    Some(format!(
                        "C = {} is not a multiple of 4 (channels are read as vec4)",
                        spec.cin
                    ))
                } else {
                    None
                }
            }
            ConvVariant::Matmul => {
                if spec.kernel != [1, 1] || spec.stride != 1 || spec.groups != 1 {
                    Some("not a 1x1, stride-1, ungrouped convolution".into())
                } else if spec.pads != [0; 4] {
                    Some(format!("padded ({:?})", spec.pads))
                } else {
                    None
                }
            }
        }
    }
}

/// The variant `conv2d()` uses for `spec` on `gpu`: the depthwise kernel for depthwise
/// convolutions with C % 4 == 0 (reading textures where the matmul from textures won the
/// adapter's timing); the matmul (whichever variant the adapter's timing chose) for
/// 1x1 stride-1 ungrouped ones; else the subgroup implicit GEMM where a subgroup matmul won
/// the adapter's timing (CPU adapters: loads dominate there, GPU-NOTES.md), reading textures
/// where the matmul from textures won, and the tiled kernel for the rest (real GPUs want
/// workgroup-memory tiles; GL adapters lack subgroups).
pub fn preferred_conv_variant(gpu: &Gpu, spec: &ConvSpec) -> ConvVariant {
    let can = |v: ConvVariant| v.unsupported(gpu, spec).is_none();
    // 1x1 convolutions on lavapipe, matmul_subgroup (40 x 64 blocks) vs conv2d_subgroup (8-pixel
    // blocks), benches/kernels.rs "1x1": 1.4-1.6x faster at ResNet-50 and EfficientNet-Lite0
    // shapes (256->64 28x28 6.8 vs 10.9 ms, 64->256 56x56 54.5 vs 76.7, 24->144 56x56 25.9 vs
    // 36.1, 1024->256 14x14 23.0 vs 37.1). Before the matmul's grid fix the conv kernel won.
    let choices = gpu.choices();
    if can(ConvVariant::Depthwise) {
        if choices.reads_textures() {
            ConvVariant::DepthwiseTexture
        } else {
            ConvVariant::Depthwise
        }
    } else if can(ConvVariant::Matmul) {
        ConvVariant::Matmul
    } else if choices.reads_textures() && can(ConvVariant::Texture) {
        ConvVariant::Texture
    } else if choices.matmul.is_subgroup() && can(ConvVariant::Subgroup) {
        ConvVariant::Subgroup
    } else {
        ConvVariant::Tiled
    }
}

/// `out[B * Ho * Wo, Cout]` (NHWC `[B, Ho, Wo, Cout]`) = `epilogue(conv(x, weight))` for NHWC
/// `x` `[B, H, W, Cin]` and `weight` in `conv_weight_layout` (`[kh, kw, Cin/groups, Cout]`).
/// The epilogue's bias and scale are `[Cout]`, its residual `[B * Ho * Wo, Cout]`. The kernel
/// is chosen by `preferred_conv_variant`.
pub fn conv2d(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    spec: &ConvSpec,
    out: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    spec.output()?;
    let variant = preferred_conv_variant(gpu, spec);
    conv2d_with(gpu, variant, x, weight, spec, out, epilogue)
}

/// `conv2d` with the kernel given; fails if `variant` cannot compute `spec` on this adapter.
pub fn conv2d_with(
    gpu: &Gpu,
    variant: ConvVariant,
    x: &Tensor,
    weight: &Tensor,
    spec: &ConvSpec,
    out: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    const OP: &str = "conv2d";
    let (oh, ow) = spec.output()?;
    if let Some(why) = variant.unsupported(gpu, spec) {
        return Err(Error::shape(
            OP,
            format!("kernel {variant:?} cannot run here: {why}"),
        ));
    }
    let s = spec;
    if let Some(steps) = variant.loop_steps(s) {
        let [kh, kw] = s.kernel;
        check_loop_steps(
            OP,
            &format!(
                "a {kh}x{kw} kernel over {} input channels per group ({variant:?})",
                s.cin_per_group()
            ),
            steps,
            "a convolution this deep is not supported",
        )?;
    }
    let m = s.batch * oh * ow;
    let x_len = s.batch * s.height * s.width * s.cin;
    check_len(OP, "input", x, x_len)?;
    check_len(OP, "weight", weight, s.weight_len())?;
    check_len(OP, "out", out, m * s.cout)?;
    for (what, t, len) in [
        ("bias", epilogue.bias, s.cout),
        ("scale", epilogue.scale, s.cout),
        ("residual", epilogue.residual, m * s.cout),
    ] {
        if let Some(t) = t {
            check_len(OP, what, t, len)?;
        }
    }
    // Indices are u32 in the kernels.
    for (what, len) in [
        ("input", x_len),
        ("out", m * s.cout),
        ("weight", s.weight_len()),
    ] {
        if len > u32::MAX as usize {
            return Err(Error::shape(
                OP,
                format!("{what} has {len} elements, over the 2^32 a kernel can index"),
            ));
        }
    }
    let flops = s.flops();
    if variant == ConvVariant::Matmul {
        let b = weight.view(&[s.cin, s.cout]);
        return Ok(matmul(gpu, x, s.cin, &b, out, m, epilogue)?.with_flops(flops));
    }
    let dummy = gpu.dummy();
    let tensors = [
        x,
        weight,
        epilogue.bias.unwrap_or(&dummy),
        epilogue.scale.unwrap_or(&dummy),
        epilogue.residual.unwrap_or(&dummy),
        out,
    ];
    let [pad_top, _, pad_left, _] = s.pads;
    if matches!(
        variant,
        ConvVariant::Depthwise | ConvVariant::DepthwiseTexture
    ) {
        let meta = DepthwiseMeta {
            batch: s.batch as u32,
            height: s.height as u32,
            width: s.width as u32,
            n: s.cout as u32,
            out_h: oh as u32,
            out_w: ow as u32,
            kernel_h: s.kernel[0] as u32,
            kernel_w: s.kernel[1] as u32,
            stride: s.stride as u32,
            dilation: s.dilation as u32,
            pad_top: pad_top as u32,
            pad_left: pad_left as u32,
        };
        // One invocation per 4 channels of 4 adjacent output pixels (the kernel's STRIP).
        let invocations = s.batch * oh * ow.div_ceil(4) * (s.cout / 4);
        let groups = grid(gpu, invocations.div_ceil(64));
        let mut constants = epilogue.constants().to_vec();
        let unit_step = s.stride == 1 && s.dilation == 1;
        constants.push(("UNIT_STEP", unit_step as u8 as f64));
        // Over the texture limits, the texture variant runs the same body from storage buffers.
        let from_textures = match variant {
            ConvVariant::DepthwiseTexture => texture_dispatch(
                gpu,
                "depthwise_conv2d_texture",
                &constants,
                (x, x_len, ATexels::Vec4),
                (weight, s.weight_len()),
                out,
                &epilogue,
                &meta,
                groups,
            )?,
            _ => None,
        };
        let d = match from_textures {
            Some(d) => d,
            None => Dispatch::new(gpu, "depthwise_conv2d", &constants, &meta, &tensors, groups)?,
        };
        return Ok(d.with_flops(flops));
    }
    let meta = ConvMeta {
        batch: s.batch as u32,
        height: s.height as u32,
        width: s.width as u32,
        cin: s.cin as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        n: s.cout as u32,
        kernel_h: s.kernel[0] as u32,
        kernel_w: s.kernel[1] as u32,
        stride: s.stride as u32,
        dilation: s.dilation as u32,
        pad_top: pad_top as u32,
        pad_left: pad_left as u32,
        groups: s.groups as u32,
        m: m as u32,
        k: s.gemm_k() as u32,
    };
    let cout_g = s.cout / s.groups;
    let subgroup_grid = || {
        grid(
            gpu,
            s.groups * cout_g.div_ceil(SUBGROUP_CHANNELS) * m.div_ceil(SUBGROUP_PIXELS),
        )
    };
    // The subgroup body's pipeline constants: the epilogue's, and whether it reads kernel rows
    // as runs (row_taps).
    let mut subgroup_constants = epilogue.constants().to_vec();
    subgroup_constants.push(("ROW_TAPS", row_taps(s) as u8 as f64));
    // Over the texture limits, the texture variant runs the same kernel body from storage
    // buffers (below).
    if variant == ConvVariant::Texture
        && let Some(d) = texture_dispatch(
            gpu,
            "conv2d_texture",
            &subgroup_constants,
            (x, x_len, ATexels::Scalar),
            (weight, s.weight_len()),
            out,
            &epilogue,
            &meta,
            subgroup_grid(),
        )?
    {
        return Ok(d.with_flops(flops));
    }
    let (kernel, groups) = match variant {
        ConvVariant::Tiled => {
            // Tiles of one group folded into x/y, groups in z.
            let [x, y, _] = grid(gpu, cout_g.div_ceil(64) * m.div_ceil(64));
            let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
            if s.groups > max {
                return Err(Error::shape(
                    OP,
                    format!(
                        "{} groups exceed the adapter's {max} workgroups per dimension",
                        s.groups
                    ),
                ));
            }
            ("conv2d_tiled", [x, y, s.groups as u32])
        }
        _ => {
            let d = Dispatch::new(
                gpu,
                "conv2d_subgroup",
                &subgroup_constants,
                &meta,
                &tensors,
                subgroup_grid(),
            )?;
            return Ok(d.with_flops(flops));
        }
    };
    Ok(
        Dispatch::new(gpu, kernel, &epilogue.constants(), &meta, &tensors, groups)?
            .with_flops(flops),
    )
}

/// Whether the subgroup convolution body reads each kernel row as one run of kw * cin
/// consecutive elements (its ROW_TAPS, see conv2d_subgroup_common.wgsl): one group and no
/// dilation, so a row's taps are consecutive in x and in the weights, and fewer than 8 input
/// channels, where the channel blocks of 8 would be empty (3-channel stems).
pub fn row_taps(s: &ConvSpec) -> bool {
    s.groups == 1 && s.dilation == 1 && s.cin < 8
}

/// The depthwise convolution (groups == Cin == Cout, C % 4 == 0) with its fused epilogue;
/// `weight` is `[kh, kw, C]` (`conv_weight_layout` of PyTorch's `[C, 1, kh, kw]`).
/// `conv2d` routes here by itself; this entry point fails for other geometries.
pub fn depthwise_conv2d(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    spec: &ConvSpec,
    out: &Tensor,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    conv2d_with(gpu, ConvVariant::Depthwise, x, weight, spec, out, epilogue)
}
