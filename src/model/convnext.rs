//! ConvNeXt in timm names: `stem.0` (4x4/4 conv) + `stem.1` (LayerNorm over channels);
//! `stages.{s}.downsample.{0: LayerNorm, 1: 2x2/2 conv}` for s > 0; blocks
//! `stages.{s}.blocks.{b}`: depthwise 7x7 `conv_dw`, `norm`, `mlp.fc1`, GELU, `mlp.fc2`, LayerScale
//! `gamma`, residual; head: global average pool, `head.norm`, `head.fc`. LayerNorm eps 1e-6.

use crate::data::{Interpolation, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::ops::{self, Act, Epilogue};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::model::cnn::{Conv, Padding, load_conv};
use crate::model::layers::{linear, norm};
use crate::model::weights::Weights;
use crate::model::{Forward, Network, TapInfo, TapKind};

const EPS: f32 = 1e-6;

type Norm = (Tensor, Tensor);

struct Block {
    name: String,
    dw: Conv,
    norm: Norm,
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    gamma: Option<Tensor>,
    hidden: usize,
}

struct Stage {
    downsample: Option<(Norm, Conv)>,
    blocks: Vec<Block>,
}

pub struct ConvNext {
    stem: (Conv, Norm),
    stages: Vec<Stage>,
    head_norm: Norm,
    fc: (Tensor, Tensor),
    classes: usize,
    params: usize,
}

impl ConvNext {
    pub fn load(gpu: &Gpu, mut w: Weights) -> Result<ConvNext> {
        if !w.use_prefix_of("stages.0.blocks.0.conv_dw.weight") {
            return Err(Error::file(
                w.path(),
                "not a ConvNeXt checkpoint: stages.0.blocks.0.conv_dw.weight is missing",
            ));
        }
        let stem_conv = load_conv(gpu, &w, "stem.0", None, 4, 1, Padding::Symmetric(0))?;
        let stem_norm = norm(gpu, &w, "stem.1", stem_conv.cout)?;
        let mut stages = Vec::new();
        let mut s = 0;
        while w.has(&format!("stages.{s}.blocks.0.conv_dw.weight")) {
            let downsample = if w.has(&format!("stages.{s}.downsample.1.weight")) {
                let cin = w.require_shape(&format!("stages.{s}.downsample.1.weight"))?[1];
                Some((
                    norm(gpu, &w, &format!("stages.{s}.downsample.0"), cin)?,
                    load_conv(
                        gpu,
                        &w,
                        &format!("stages.{s}.downsample.1"),
                        None,
                        2,
                        1,
                        Padding::Symmetric(0),
                    )?,
                ))
            } else {
                None
            };
            let mut blocks = Vec::new();
            let mut b = 0;
            while w.has(&format!("stages.{s}.blocks.{b}.conv_dw.weight")) {
                let name = format!("stages.{s}.blocks.{b}");
                let c = w.require_shape(&format!("{name}.conv_dw.weight"))?[0];
                let k = w.require_shape(&format!("{name}.conv_dw.weight"))?[3];
                let dw = load_conv(
                    gpu,
                    &w,
                    &format!("{name}.conv_dw"),
                    None,
                    1,
                    c,
                    Padding::Symmetric(k / 2),
                )?;
                let fc1 = linear(gpu, &w, &format!("{name}.mlp.fc1"))?;
                let hidden = fc1.1.len();
                let fc2 = linear(gpu, &w, &format!("{name}.mlp.fc2"))?;
                let gk = format!("{name}.gamma");
                let gamma = if w.has(&gk) {
                    Some(gpu.upload(&gk, &[c], &w.get(&gk, &[c])?)?)
                } else {
                    None
                };
                blocks.push(Block {
                    norm: norm(gpu, &w, &format!("{name}.norm"), c)?,
                    name,
                    dw,
                    fc1,
                    fc2,
                    gamma,
                    hidden,
                });
                b += 1;
            }
            stages.push(Stage { downsample, blocks });
            s += 1;
        }
        let width = stages
            .last()
            .and_then(|s| s.blocks.last())
            .map(|b| b.dw.cout)
            .unwrap_or(stem_conv.cout);
        let head_norm = norm(gpu, &w, "head.norm", width)?;
        let fc = linear(gpu, &w, "head.fc")?;
        let classes = fc.1.len();
        Ok(ConvNext {
            stem: (stem_conv, stem_norm),
            stages,
            head_norm,
            fc,
            classes,
            params: w.element_count(),
        })
    }
}

impl Network for ConvNext {
    fn describe(&self) -> String {
        let depths: Vec<String> = self
            .stages
            .iter()
            .map(|s| s.blocks.len().to_string())
            .collect();
        let widths: Vec<String> = self
            .stages
            .iter()
            .map(|s| s.blocks[0].dw.cout.to_string())
            .collect();
        format!(
            "ConvNeXt (timm names): depths [{}], widths [{}], {} classes",
            depths.join(", "),
            widths.join(", "),
            self.classes
        )
    }

    fn arch(&self) -> &'static str {
        "convnext"
    }

    fn parameters(&self) -> usize {
        self.params
    }

    fn f16_weights(&self) -> bool {
        self.stem.0.weight.elem == Elem::F16
    }

    fn preprocess(&self) -> Preprocess {
        // timm convnext_*.in1k evaluation: 224 at crop 0.875 (0.95 for some tags), bicubic.
        Preprocess::imagenet(224, 0.875, Interpolation::Bicubic).expect("preset sizes are valid")
    }

    fn taps(&self, height: usize, width: usize) -> Result<Vec<TapInfo>> {
        let mut hw = self.stem.0.geometry(height, width).0;
        let mut taps = Vec::new();
        let mut depth = 0;
        for stage in &self.stages {
            if let Some((_, conv)) = &stage.downsample {
                hw = conv.geometry(hw.0, hw.1).0;
            }
            for b in &stage.blocks {
                depth += 1;
                let p = hw.0 * hw.1;
                taps.push(TapInfo {
                    name: format!("{}.mlp.act", b.name),
                    kind: TapKind::Hidden,
                    depth,
                    positions: p,
                    channels: b.hidden,
                });
                taps.push(TapInfo {
                    name: b.name.clone(),
                    kind: TapKind::Block,
                    depth,
                    positions: p,
                    channels: b.dw.cout,
                });
            }
        }
        Ok(taps)
    }

    fn forward(&self, gpu: &Gpu, batch: usize, height: usize, width: usize) -> Result<Forward> {
        let taps = self.taps(height, width)?;
        let input = gpu.zeros("input", &[batch, 3, height, width])?;
        let nhwc = gpu.zeros("input nhwc", &[batch, height, width, 3])?;
        let mut plan = Plan::default();
        let mut tensors = Vec::with_capacity(taps.len());
        plan.push(ops::layout::nchw_to_nhwc(gpu, &input, &nhwc)?);
        let (stem, stem_norm) = &self.stem;
        let mut hw = stem.geometry(height, width).0;
        let conv_out = gpu.zeros("stem conv", &[batch, hw.0 * hw.1, stem.cout])?;
        plan.push(stem.record(
            gpu,
            &nhwc,
            batch,
            (height, width),
            &conv_out,
            Act::None,
            None,
        )?);
        let mut x = gpu.zeros("stem", &[batch, hw.0 * hw.1, stem.cout])?;
        plan.push(ops::layernorm(
            gpu,
            &conv_out,
            &stem_norm.0,
            &stem_norm.1,
            EPS,
            &x,
        )?);
        for stage in &self.stages {
            if let Some((n, conv)) = &stage.downsample {
                let normed = gpu.zeros("downsample norm", &x.shape)?;
                plan.push(ops::layernorm(gpu, &x, &n.0, &n.1, EPS, &normed)?);
                let o = conv.geometry(hw.0, hw.1).0;
                x = gpu.zeros("downsample", &[batch, o.0 * o.1, conv.cout])?;
                plan.push(conv.record(gpu, &normed, batch, hw, &x, Act::None, None)?);
                hw = o;
            }
            let p = hw.0 * hw.1;
            for b in &stage.blocks {
                let c = b.dw.cout;
                let dw = gpu.zeros(&format!("{} dw", b.name), &[batch, p, c])?;
                plan.push(b.dw.record(gpu, &x, batch, hw, &dw, Act::None, None)?);
                let normed = gpu.zeros(&format!("{} norm", b.name), &[batch, p, c])?;
                plan.push(ops::layernorm(
                    gpu, &dw, &b.norm.0, &b.norm.1, EPS, &normed,
                )?);
                let hid = gpu.zeros(&format!("{}.mlp.act", b.name), &[batch, p, b.hidden])?;
                plan.push(ops::matmul(
                    gpu,
                    &normed,
                    c,
                    &b.fc1.0,
                    &hid,
                    batch * p,
                    Epilogue {
                        bias: Some(&b.fc1.1),
                        act: Act::Gelu,
                        ..Default::default()
                    },
                )?);
                plan.tap(tensors.len());
                tensors.push(hid.clone());
                let out = gpu.zeros(&b.name, &[batch, p, c])?;
                plan.push(ops::matmul(
                    gpu,
                    &hid,
                    b.hidden,
                    &b.fc2.0,
                    &out,
                    batch * p,
                    Epilogue {
                        bias: Some(&b.fc2.1),
                        scale: b.gamma.as_ref(),
                        residual: Some(&x),
                        act: Act::None,
                    },
                )?);
                plan.tap(tensors.len());
                tensors.push(out.clone());
                x = out;
            }
        }
        let c = x.cols();
        let pooled = gpu.zeros("pooled", &[batch, c])?;
        plan.push(ops::pool::global_avg_pool(
            gpu,
            &x,
            batch,
            hw.0 * hw.1,
            c,
            &pooled,
        )?);
        let normed = gpu.zeros("head norm", &[batch, c])?;
        plan.push(ops::layernorm(
            gpu,
            &pooled,
            &self.head_norm.0,
            &self.head_norm.1,
            EPS,
            &normed,
        )?);
        let logits = gpu.zeros("logits", &[batch, self.classes])?;
        plan.push(ops::matmul(
            gpu,
            &normed,
            c,
            &self.fc.0,
            &logits,
            batch,
            Epilogue {
                bias: Some(&self.fc.1),
                ..Default::default()
            },
        )?);
        Ok(Forward {
            plan,
            input,
            taps,
            tensors,
            logits: Some(logits),
            batch,
        })
    }
}
