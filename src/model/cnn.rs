//! What the CNN families share: convolutions loaded with their BatchNorm folded in, TF "SAME"
//! or PyTorch padding, and the NHWC activation bookkeeping (every CNN tap is [N, H*W, C]).

use crate::error::{Error, Result};
use crate::gpu::ops::{self, Act, Epilogue};
use crate::gpu::{Dispatch, Gpu, Tensor};
use crate::model::layers;
use crate::model::weights::Weights;

/// How a convolution pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// PyTorch `padding=p` on every side.
    Symmetric(usize),
    /// TensorFlow "SAME": output = ceil(input / stride), the odd extra pixel bottom/right.
    Same,
}

/// A convolution (with any BatchNorm folded in) ready to record.
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub cin: usize,
    pub cout: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: Padding,
}

/// The conv's [cout, cin/groups, k, k] weight, with the BatchNorm at `bn` (keys `bn.weight`,
/// `bn.bias`, `bn.running_mean`, `bn.running_var`) folded in when given.
#[allow(clippy::too_many_arguments)]
pub fn load_conv(
    gpu: &Gpu,
    w: &Weights,
    key: &str,
    bn: Option<(&str, f32)>,
    stride: usize,
    groups: usize,
    padding: Padding,
) -> Result<Conv> {
    let wkey = format!("{key}.weight");
    let shape = w.require_shape(&wkey)?;
    let [cout, cin_g, kh, kw] = shape[..] else {
        return Err(Error::Tensor {
            path: w.path().into(),
            key: wkey,
            problem: format!("expected a conv weight [out, in/groups, k, k], found {shape:?}"),
        });
    };
    if kh != kw {
        return Err(Error::Tensor {
            path: w.path().into(),
            key: wkey,
            problem: format!("non-square kernel {kh}x{kw} is not supported"),
        });
    }
    let mut weight = w.get(&wkey, &shape)?;
    let bkey = format!("{key}.bias");
    let mut bias = if w.has(&bkey) {
        w.get(&bkey, &[cout])?
    } else {
        vec![0.0; cout]
    };
    if let Some((bn, eps)) = bn {
        let get = |k: &str| w.get(&format!("{bn}.{k}"), &[cout]);
        ops::conv::fold_batchnorm(
            &mut weight,
            &mut bias,
            &get("weight")?,
            &get("bias")?,
            &get("running_mean")?,
            &get("running_var")?,
            eps,
        )?;
    }
    let cin = cin_g * groups;
    Ok(Conv {
        weight: layers::weight(
            gpu,
            w,
            &wkey,
            &[weight.len()],
            &ops::conv::conv_weight_layout(&weight, [cout, cin_g, kh, kw])?,
        )?,
        bias: gpu.upload(key, &[cout], &bias)?,
        cin,
        cout,
        kernel: kh,
        stride,
        groups,
        padding,
    })
}

impl Conv {
    /// Output size and (top, bottom, left, right) padding for an h x w input.
    pub fn geometry(&self, h: usize, w: usize) -> ((usize, usize), [usize; 4]) {
        let (k, s) = (self.kernel, self.stride);
        match self.padding {
            Padding::Symmetric(p) => (
                ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1),
                [p, p, p, p],
            ),
            Padding::Same => {
                let pads = |n: usize| {
                    let out = n.div_ceil(s);
                    let total = ((out - 1) * s + k).saturating_sub(n);
                    (out, total / 2, total - total / 2)
                };
                let (ho, t, b) = pads(h);
                let (wo, l, r) = pads(w);
                ((ho, wo), [t, b, l, r])
            }
        }
    }

    /// Record this conv over an NHWC `input` of `batch` x `h` x `w`, writing NHWC `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        gpu: &Gpu,
        input: &Tensor,
        batch: usize,
        (h, w): (usize, usize),
        out: &Tensor,
        act: Act,
        residual: Option<&Tensor>,
    ) -> Result<Dispatch> {
        let (_, pads) = self.geometry(h, w);
        let epilogue = Epilogue {
            bias: Some(&self.bias),
            scale: None,
            residual,
            act,
        };
        let spec = ops::conv::ConvSpec {
            batch,
            height: h,
            width: w,
            cin: self.cin,
            cout: self.cout,
            kernel: [self.kernel, self.kernel],
            stride: self.stride,
            dilation: 1,
            groups: self.groups,
            pads,
        };
        // The op picks the kernel: depthwise, a plain matmul for 1x1 stride-1 convolutions,
        // or an implicit GEMM shaped for this adapter.
        ops::conv::conv2d(gpu, input, &self.weight, &spec, out, epilogue)
    }
}
