//! ResNet-18/34/50/101/152 with timm or torchvision names (`conv1`, `bn1`,
//! `layer{s}.{b}.conv{k}`, `downsample`, `fc`), BatchNorm folded into the convolutions.
//! Basic blocks (18/34) or bottlenecks (50+) are told apart by `layer1.0.conv3`; the stride
//! sits on the 3x3 conv of each stage's first block (timm and torchvision v1.5 alike).

use crate::data::{Interpolation, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::ops::{self, Act, Epilogue};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::model::cnn::{Conv, Padding, load_conv};
use crate::model::layers::linear_sized;
use crate::model::weights::Weights;
use crate::model::{Forward, Network, TapInfo, TapKind};

const BN_EPS: f32 = 1e-5;

struct Block {
    name: String,
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

pub struct ResNet {
    stem: Conv,
    blocks: Vec<Block>,
    bottleneck: bool,
    fc: (Tensor, Tensor),
    classes: usize,
    params: usize,
}

impl ResNet {
    pub fn load(gpu: &Gpu, mut w: Weights) -> Result<ResNet> {
        if !w.use_prefix_of("layer1.0.conv1.weight") {
            return Err(Error::file(
                w.path(),
                "not a ResNet checkpoint: layer1.0.conv1.weight is missing",
            ));
        }
        let bottleneck = w.has("layer1.0.conv3.weight");
        let stem = load_conv(
            gpu,
            &w,
            "conv1",
            Some(("bn1", BN_EPS)),
            2,
            1,
            Padding::Symmetric(3),
        )?;
        let mut blocks = Vec::new();
        for stage in 1..=4 {
            let mut b = 0;
            while w.has(&format!("layer{stage}.{b}.conv1.weight")) {
                let name = format!("layer{stage}.{b}");
                let stride = if stage > 1 && b == 0 { 2 } else { 1 };
                let mut convs = Vec::new();
                if bottleneck {
                    convs.push(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.conv1"),
                        Some((&format!("{name}.bn1"), BN_EPS)),
                        1,
                        1,
                        Padding::Symmetric(0),
                    )?);
                    convs.push(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.conv2"),
                        Some((&format!("{name}.bn2"), BN_EPS)),
                        stride,
                        1,
                        Padding::Symmetric(1),
                    )?);
                    convs.push(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.conv3"),
                        Some((&format!("{name}.bn3"), BN_EPS)),
                        1,
                        1,
                        Padding::Symmetric(0),
                    )?);
                } else {
                    convs.push(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.conv1"),
                        Some((&format!("{name}.bn1"), BN_EPS)),
                        stride,
                        1,
                        Padding::Symmetric(1),
                    )?);
                    convs.push(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.conv2"),
                        Some((&format!("{name}.bn2"), BN_EPS)),
                        1,
                        1,
                        Padding::Symmetric(1),
                    )?);
                }
                let downsample = if w.has(&format!("{name}.downsample.0.weight")) {
                    Some(load_conv(
                        gpu,
                        &w,
                        &format!("{name}.downsample.0"),
                        Some((&format!("{name}.downsample.1"), BN_EPS)),
                        stride,
                        1,
                        Padding::Symmetric(0),
                    )?)
                } else {
                    None
                };
                blocks.push(Block {
                    name,
                    convs,
                    downsample,
                });
                b += 1;
            }
        }
        let width = blocks
            .last()
            .map(|b| b.convs.last().unwrap().cout)
            .unwrap_or(0);
        let classes = w.require_shape("fc.weight")?[0];
        let fc = linear_sized(gpu, &w, "fc", width, classes)?;
        Ok(ResNet {
            stem,
            blocks,
            bottleneck,
            fc,
            classes,
            params: w.element_count(),
        })
    }

    /// Spatial size after the stem conv and the 3x3/2 max pool.
    fn stem_sizes(&self, h: usize, w: usize) -> ((usize, usize), (usize, usize)) {
        let (s, _) = self.stem.geometry(h, w);
        (s, ((s.0 + 2 - 3) / 2 + 1, (s.1 + 2 - 3) / 2 + 1))
    }
}

impl Network for ResNet {
    fn describe(&self) -> String {
        format!(
            "ResNet ({} blocks, {}), head of {} classes",
            self.blocks.len(),
            if self.bottleneck {
                "bottleneck"
            } else {
                "basic"
            },
            self.classes
        )
    }

    fn arch(&self) -> &'static str {
        "resnet"
    }

    fn parameters(&self) -> usize {
        self.params
    }

    fn f16_weights(&self) -> bool {
        self.stem.weight.elem == Elem::F16
    }

    fn preprocess(&self) -> Preprocess {
        // timm's resnet*.a1_in1k / tv_in1k evaluation: 224, crop 0.95 bicubic (timm) —
        // torchvision's 0.875 bilinear differs; timm's is the default here.
        Preprocess::imagenet(224, 0.95, Interpolation::Bicubic).expect("preset sizes are valid")
    }

    fn taps(&self, height: usize, width: usize) -> Result<Vec<TapInfo>> {
        let (stem, mut hw) = self.stem_sizes(height, width);
        let mut taps = vec![TapInfo {
            name: "act1".into(),
            kind: TapKind::Other,
            depth: 0,
            positions: stem.0 * stem.1,
            channels: self.stem.cout,
        }];
        for (depth, b) in self.blocks.iter().enumerate() {
            for (k, conv) in b.convs.iter().enumerate() {
                hw = conv.geometry(hw.0, hw.1).0;
                let last = k + 1 == b.convs.len();
                taps.push(TapInfo {
                    name: if last {
                        b.name.clone()
                    } else {
                        format!("{}.act{}", b.name, k + 1)
                    },
                    kind: if last {
                        TapKind::Block
                    } else {
                        TapKind::Hidden
                    },
                    depth: depth + 1,
                    positions: hw.0 * hw.1,
                    channels: conv.cout,
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
        let ((sh, sw), (ph, pw)) = self.stem_sizes(height, width);
        let stem_out = gpu.zeros("act1", &[batch, sh * sw, self.stem.cout])?;
        plan.push(self.stem.record(
            gpu,
            &nhwc,
            batch,
            (height, width),
            &stem_out,
            Act::Relu,
            None,
        )?);
        plan.tap(0);
        tensors.push(stem_out.clone());
        let mut x = gpu.zeros("maxpool", &[batch, ph * pw, self.stem.cout])?;
        plan.push(ops::pool::max_pool2d(
            gpu,
            &stem_out,
            [batch, sh, sw, self.stem.cout],
            3,
            2,
            1,
            &x,
        )?);
        let mut hw = (ph, pw);
        let mut tap = 1;
        for b in &self.blocks {
            let mut cur = x.clone();
            let mut cur_hw = hw;
            let n = b.convs.len();
            let mut shortcut = x.clone();
            if let Some(ds) = &b.downsample {
                let (dh, dw) = ds.geometry(hw.0, hw.1).0;
                shortcut = gpu.zeros(
                    &format!("{}.downsample", b.name),
                    &[batch, dh * dw, ds.cout],
                )?;
                plan.push(ds.record(gpu, &x, batch, hw, &shortcut, Act::None, None)?);
            }
            for (k, conv) in b.convs.iter().enumerate() {
                let (oh, ow) = conv.geometry(cur_hw.0, cur_hw.1).0;
                let out = gpu.zeros(
                    &format!("{}.conv{}", b.name, k + 1),
                    &[batch, oh * ow, conv.cout],
                )?;
                let last = k + 1 == n;
                plan.push(conv.record(
                    gpu,
                    &cur,
                    batch,
                    cur_hw,
                    &out,
                    Act::Relu,
                    last.then_some(&shortcut),
                )?);
                plan.tap(tap);
                tensors.push(out.clone());
                tap += 1;
                cur = out;
                cur_hw = (oh, ow);
            }
            x = cur;
            hw = cur_hw;
        }
        let width_c = self
            .blocks
            .last()
            .map(|b| b.convs.last().unwrap().cout)
            .unwrap_or(self.stem.cout);
        let pooled = gpu.zeros("pooled", &[batch, width_c])?;
        plan.push(ops::pool::global_avg_pool(
            gpu,
            &x,
            batch,
            hw.0 * hw.1,
            width_c,
            &pooled,
        )?);
        let logits = gpu.zeros("logits", &[batch, self.classes])?;
        plan.push(ops::matmul(
            gpu,
            &pooled,
            width_c,
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
