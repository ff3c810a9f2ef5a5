//! EfficientNet / EfficientNet-Lite, in timm names (`conv_stem`, `blocks.{s}.{b}.conv_dw`, ...)
//! and in the names of the PyTorch port of the TF checkpoints (`_conv_stem`,
//! `_blocks.N._expand_conv`, `_depthwise_conv`, `_project_conv`, `_bnK`). Blocks are inverted
//! residuals (expand 1x1, depthwise kxk, project 1x1) or, without expansion, depthwise-separable;
//! the residual is added when the stride is 1 and the channels match. Strides are not in the
//! tensors: they follow the EfficientNet stage table (1, 2, 2, 2, 1, 2, 1), stages being told
//! apart by the block index (timm) or by a change of output channels (TF port).
//! The Lite variants (no squeeze-excitation, ReLU6) are what is supported; a checkpoint with
//! squeeze-excitation tensors is refused with a clear message.

use crate::data::{Interpolation, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::ops::{self, Act, Epilogue};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::model::cnn::{Conv, Padding, load_conv};
use crate::model::layers::linear_sized;
use crate::model::weights::Weights;
use crate::model::{Forward, Network, TapInfo, TapKind};

const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// A block's checkpoint keys: (name, (expand conv, its BatchNorm) if it expands, (depthwise
/// conv, BN), (project conv, BN), stage).
type BlockKeys = (
    String,
    Option<(String, String)>,
    (String, String),
    (String, String),
    usize,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    Timm,
    TfPort,
}

struct Block {
    name: String,
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    skip: bool,
}

pub struct EfficientNet {
    naming: Naming,
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    fc: (Tensor, Tensor),
    classes: usize,
    params: usize,
}

fn padding(naming: Naming, kernel: usize) -> Padding {
    match naming {
        Naming::Timm => Padding::Symmetric(kernel / 2),
        Naming::TfPort => Padding::Same,
    }
}

fn kernel_of(w: &Weights, key: &str) -> Result<usize> {
    Ok(w.require_shape(&format!("{key}.weight"))?
        .last()
        .copied()
        .unwrap_or(1))
}

impl EfficientNet {
    pub fn load(gpu: &Gpu, mut w: Weights) -> Result<EfficientNet> {
        let naming = if w.use_prefix_of("_blocks.0._depthwise_conv.weight") {
            Naming::TfPort
        } else if w.use_prefix_of("blocks.0.0.conv_dw.weight") {
            Naming::Timm
        } else {
            return Err(Error::file(
                w.path(),
                "not an EfficientNet checkpoint: no _blocks.0._depthwise_conv or blocks.0.0.conv_dw",
            ));
        };
        let (eps, act_keys) = match naming {
            Naming::TfPort => (1e-3, ["_conv_stem", "_bn0", "_conv_head", "_bn1", "_fc"]),
            Naming::Timm => (1e-5, ["conv_stem", "bn1", "conv_head", "bn2", "classifier"]),
        };
        let [stem_key, stem_bn, head_key, head_bn, fc_key] = act_keys;
        if w.raw_keys()
            .iter()
            .any(|k| k.contains("_se_") || k.contains(".se."))
        {
            return Err(Error::file(
                w.path(),
                "squeeze-excitation blocks (EfficientNet-B*) are not supported yet; EfficientNet-Lite is",
            ));
        }
        let stem = load_conv(
            gpu,
            &w,
            stem_key,
            Some((stem_bn, eps)),
            2,
            1,
            padding(naming, 3),
        )?;
        let mut specs: Vec<BlockKeys> = Vec::new();
        match naming {
            Naming::TfPort => {
                let mut n = 0;
                let mut stage = 0;
                let mut last_out = None;
                while w.has(&format!("_blocks.{n}._depthwise_conv.weight")) {
                    let b = format!("_blocks.{n}");
                    let out = w.require_shape(&format!("{b}._project_conv.weight"))?[0];
                    if last_out.is_some_and(|o| o != out) {
                        stage += 1;
                    }
                    last_out = Some(out);
                    let expand = w
                        .has(&format!("{b}._expand_conv.weight"))
                        .then(|| (format!("{b}._expand_conv"), format!("{b}._bn0")));
                    specs.push((
                        b.clone(),
                        expand,
                        (format!("{b}._depthwise_conv"), format!("{b}._bn1")),
                        (format!("{b}._project_conv"), format!("{b}._bn2")),
                        stage,
                    ));
                    n += 1;
                }
            }
            Naming::Timm => {
                let mut s = 0;
                while w.has(&format!("blocks.{s}.0.conv_dw.weight")) {
                    let mut b = 0;
                    while w.has(&format!("blocks.{s}.{b}.conv_dw.weight")) {
                        let name = format!("blocks.{s}.{b}");
                        let ir = w.has(&format!("{name}.conv_pwl.weight"));
                        specs.push(if ir {
                            (
                                name.clone(),
                                Some((format!("{name}.conv_pw"), format!("{name}.bn1"))),
                                (format!("{name}.conv_dw"), format!("{name}.bn2")),
                                (format!("{name}.conv_pwl"), format!("{name}.bn3")),
                                s,
                            )
                        } else {
                            (
                                name.clone(),
                                None,
                                (format!("{name}.conv_dw"), format!("{name}.bn1")),
                                (format!("{name}.conv_pw"), format!("{name}.bn2")),
                                s,
                            )
                        });
                        b += 1;
                    }
                    s += 1;
                }
            }
        }
        let mut blocks = Vec::with_capacity(specs.len());
        let mut prev_stage = usize::MAX;
        for (name, expand, (dw, dw_bn), (pj, pj_bn), stage) in specs {
            let stride = if stage != prev_stage {
                *STAGE_STRIDES.get(stage).unwrap_or(&1)
            } else {
                1
            };
            prev_stage = stage;
            let expand = match expand {
                Some((k, bn)) => Some(load_conv(
                    gpu,
                    &w,
                    &k,
                    Some((&bn, eps)),
                    1,
                    1,
                    Padding::Symmetric(0),
                )?),
                None => None,
            };
            let channels = w.require_shape(&format!("{dw}.weight"))?[0];
            let k = kernel_of(&w, &dw)?;
            let depthwise = load_conv(
                gpu,
                &w,
                &dw,
                Some((&dw_bn, eps)),
                stride,
                channels,
                padding(naming, k),
            )?;
            let project = load_conv(
                gpu,
                &w,
                &pj,
                Some((&pj_bn, eps)),
                1,
                1,
                Padding::Symmetric(0),
            )?;
            let cin = expand.as_ref().map_or(depthwise.cin, |e| e.cin);
            let skip = stride == 1 && cin == project.cout;
            blocks.push(Block {
                name,
                expand,
                depthwise,
                project,
                skip,
            });
        }
        let head = load_conv(
            gpu,
            &w,
            head_key,
            Some((head_bn, eps)),
            1,
            1,
            Padding::Symmetric(0),
        )?;
        let classes = w.require_shape(&format!("{fc_key}.weight"))?[0];
        let fc = linear_sized(gpu, &w, fc_key, head.cout, classes)?;
        Ok(EfficientNet {
            naming,
            stem,
            blocks,
            head,
            fc,
            classes,
            params: w.element_count(),
        })
    }

    /// Tap names of a block's activations, in order: after the first ReLU6, after the second.
    fn act_names(&self, b: &Block) -> Vec<String> {
        let n = if b.expand.is_some() { 2 } else { 1 };
        (1..=n)
            .map(|k| match self.naming {
                Naming::TfPort => format!("{}.act{k}", b.name),
                Naming::Timm => format!("{}.bn{k}", b.name),
            })
            .collect()
    }

    fn stem_tap(&self) -> &'static str {
        match self.naming {
            Naming::TfPort => "_bn0",
            Naming::Timm => "bn1",
        }
    }

    fn head_tap(&self) -> &'static str {
        match self.naming {
            Naming::TfPort => "_bn1",
            Naming::Timm => "bn2",
        }
    }
}

impl Network for EfficientNet {
    fn describe(&self) -> String {
        format!(
            "EfficientNet-Lite ({}): {} blocks, head {} channels, {} classes",
            match self.naming {
                Naming::TfPort => "TF-port names",
                Naming::Timm => "timm names",
            },
            self.blocks.len(),
            self.head.cout,
            self.classes
        )
    }

    fn arch(&self) -> &'static str {
        "efficientnet"
    }

    fn parameters(&self) -> usize {
        self.params
    }

    fn f16_weights(&self) -> bool {
        self.stem.weight.elem == Elem::F16
    }

    fn preprocess(&self) -> Preprocess {
        match self.naming {
            // The TF-Lite checkpoints take (x - 127) / 128 on RGB at 224: the photo's central
            // square at 224 (shorter side to 224, centre crop 224), as the TF-Lite example apps
            // feed them; not timm's 256/224 crop (models/README.md compares the two).
            Naming::TfPort => Preprocess::efficientnet_lite_tf(224, 1.0, Interpolation::Bicubic),
            Naming::Timm => Preprocess::imagenet(224, 0.875, Interpolation::Bicubic),
        }
        .expect("preset sizes are valid")
    }

    fn taps(&self, height: usize, width: usize) -> Result<Vec<TapInfo>> {
        let mut hw = self.stem.geometry(height, width).0;
        let mut taps = vec![TapInfo {
            name: self.stem_tap().into(),
            kind: TapKind::Other,
            depth: 0,
            positions: hw.0 * hw.1,
            channels: self.stem.cout,
        }];
        for (i, b) in self.blocks.iter().enumerate() {
            let names = self.act_names(b);
            if let Some(e) = &b.expand {
                taps.push(TapInfo {
                    name: names[0].clone(),
                    kind: TapKind::Hidden,
                    depth: i + 1,
                    positions: hw.0 * hw.1,
                    channels: e.cout,
                });
            }
            hw = b.depthwise.geometry(hw.0, hw.1).0;
            taps.push(TapInfo {
                name: names.last().unwrap().clone(),
                kind: TapKind::Hidden,
                depth: i + 1,
                positions: hw.0 * hw.1,
                channels: b.depthwise.cout,
            });
            taps.push(TapInfo {
                name: b.name.clone(),
                kind: TapKind::Block,
                depth: i + 1,
                positions: hw.0 * hw.1,
                channels: b.project.cout,
            });
        }
        taps.push(TapInfo {
            name: self.head_tap().into(),
            kind: TapKind::Other,
            depth: self.blocks.len() + 1,
            positions: hw.0 * hw.1,
            channels: self.head.cout,
        });
        Ok(taps)
    }

    fn forward(&self, gpu: &Gpu, batch: usize, height: usize, width: usize) -> Result<Forward> {
        let taps = self.taps(height, width)?;
        let input = gpu.zeros("input", &[batch, 3, height, width])?;
        let nhwc = gpu.zeros("input nhwc", &[batch, height, width, 3])?;
        let mut plan = Plan::default();
        let mut tensors = Vec::with_capacity(taps.len());
        plan.push(ops::layout::nchw_to_nhwc(gpu, &input, &nhwc)?);
        let mut hw = self.stem.geometry(height, width).0;
        let mut x = gpu.zeros("stem", &[batch, hw.0 * hw.1, self.stem.cout])?;
        plan.push(
            self.stem
                .record(gpu, &nhwc, batch, (height, width), &x, Act::Relu6, None)?,
        );
        let mut emit = |plan: &mut Plan, t: &Tensor| {
            plan.tap(tensors.len());
            tensors.push(t.clone());
        };
        emit(&mut plan, &x);
        for b in &self.blocks {
            let mut cur = x.clone();
            if let Some(e) = &b.expand {
                let out =
                    gpu.zeros(&format!("{} expand", b.name), &[batch, hw.0 * hw.1, e.cout])?;
                plan.push(e.record(gpu, &cur, batch, hw, &out, Act::Relu6, None)?);
                emit(&mut plan, &out);
                cur = out;
            }
            let (oh, ow) = b.depthwise.geometry(hw.0, hw.1).0;
            let dw = gpu.zeros(
                &format!("{} depthwise", b.name),
                &[batch, oh * ow, b.depthwise.cout],
            )?;
            plan.push(
                b.depthwise
                    .record(gpu, &cur, batch, hw, &dw, Act::Relu6, None)?,
            );
            emit(&mut plan, &dw);
            let out = gpu.zeros(&b.name, &[batch, oh * ow, b.project.cout])?;
            plan.push(b.project.record(
                gpu,
                &dw,
                batch,
                (oh, ow),
                &out,
                Act::None,
                b.skip.then_some(&x),
            )?);
            emit(&mut plan, &out);
            x = out;
            hw = (oh, ow);
        }
        let head = gpu.zeros("head", &[batch, hw.0 * hw.1, self.head.cout])?;
        plan.push(
            self.head
                .record(gpu, &x, batch, hw, &head, Act::Relu6, None)?,
        );
        emit(&mut plan, &head);
        let pooled = gpu.zeros("pooled", &[batch, self.head.cout])?;
        plan.push(ops::pool::global_avg_pool(
            gpu,
            &head,
            batch,
            hw.0 * hw.1,
            self.head.cout,
            &pooled,
        )?);
        let logits = gpu.zeros("logits", &[batch, self.classes])?;
        plan.push(ops::matmul(
            gpu,
            &pooled,
            self.head.cout,
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
