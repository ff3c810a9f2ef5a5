//! Vision Transformers: timm names (`blocks.{i}.attn.qkv`, vit_*/deit_*) and HuggingFace
//! DINOv2 names (`encoder.layer.{i}.attention.attention.query`, LayerScale). Pre-norm blocks:
//!   x = x + ls1 * proj(attn(norm1(x)));  x = x + ls2 * fc2(gelu(fc1(norm2(x))))
//! Depth, width, patch size, MLP width and the position grid come from the tensors; heads do
//! not (they only split the width), so they default to width / 64 (every timm and DINOv2
//! release) and can be given explicitly.

use crate::data::{Interpolation, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::ops::{self, Act, Epilogue};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::model::interpolate;
use crate::model::layers::{self, linear_sized, norm, optional_vector, vector};
use crate::model::weights::{Weights, transpose};
use crate::model::{Forward, ModelOptions, Network, TapInfo, TapKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Naming {
    Timm,
    Dinov2,
}

impl Naming {
    fn block(self, i: usize) -> String {
        match self {
            Naming::Timm => format!("blocks.{i}"),
            Naming::Dinov2 => format!("encoder.layer.{i}"),
        }
    }
    fn mlp_act(self, i: usize) -> String {
        match self {
            Naming::Timm => format!("blocks.{i}.mlp.act"),
            Naming::Dinov2 => format!("encoder.layer.{i}.mlp.activation"),
        }
    }
    fn final_norm(self) -> &'static str {
        match self {
            Naming::Timm => "norm",
            Naming::Dinov2 => "layernorm",
        }
    }
    fn patch_weight(self) -> &'static str {
        match self {
            Naming::Timm => "patch_embed.proj",
            Naming::Dinov2 => "embeddings.patch_embeddings.projection",
        }
    }
    fn cls(self) -> &'static str {
        match self {
            Naming::Timm => "cls_token",
            Naming::Dinov2 => "embeddings.cls_token",
        }
    }
    fn pos(self) -> &'static str {
        match self {
            Naming::Timm => "pos_embed",
            Naming::Dinov2 => "embeddings.position_embeddings",
        }
    }
}

struct Block {
    norm1: (Tensor, Tensor),
    qkv: (Tensor, Tensor),
    proj: (Tensor, Tensor),
    ls1: Option<Tensor>,
    norm2: (Tensor, Tensor),
    fc1: (Tensor, Tensor),
    fc2: (Tensor, Tensor),
    ls2: Option<Tensor>,
}

pub struct Vit {
    naming: Naming,
    depth: usize,
    dim: usize,
    heads: usize,
    patch: usize,
    hidden: usize,
    eps: f32,
    /// Side of the square grid the position table was trained on.
    pos_grid: usize,
    /// The position table, [1 + grid^2, D], kept on the CPU to resample per input size.
    pos_table: Vec<f32>,
    patch_w: Tensor,
    patch_b: Tensor,
    cls: Tensor,
    blocks: Vec<Block>,
    norm: (Tensor, Tensor),
    head: Option<(Tensor, Tensor)>,
    params: usize,
}

impl Vit {
    pub fn load(gpu: &Gpu, mut w: Weights, options: &ModelOptions) -> Result<Vit> {
        let naming = if w.use_prefix_of("blocks.0.attn.qkv.weight") {
            Naming::Timm
        } else if w.use_prefix_of("encoder.layer.0.attention.attention.query.weight")
            || w.use_prefix_of("encoder.layer.0.attention.q_proj.weight")
        {
            Naming::Dinov2
        } else {
            return Err(Error::file(
                w.path(),
                "not a ViT checkpoint: neither blocks.0.attn.qkv.weight (timm) nor \
                 encoder.layer.0.attention.attention.query.weight (HF DINOv2) is present",
            ));
        };
        for unsupported in [
            "fc_norm.weight",
            "reg_token",
            "embeddings.register_tokens",
            "encoder.layer.0.mlp.weights_in.weight",
        ] {
            if w.has(unsupported) {
                return Err(Error::file(
                    w.path(),
                    format!(
                        "this ViT variant ('{unsupported}': average pooling, registers or SwiGLU) is not supported yet"
                    ),
                ));
            }
        }
        let pw_key = format!("{}.weight", naming.patch_weight());
        let pw_shape = w.require_shape(&pw_key)?;
        let [dim, 3, patch, patch2] = pw_shape[..] else {
            return Err(Error::Tensor {
                path: w.path().into(),
                key: pw_key,
                problem: format!("expected [D, 3, p, p], found {pw_shape:?}"),
            });
        };
        if patch != patch2 {
            return Err(Error::file(
                w.path(),
                format!("non-square patches {patch}x{patch2} are not supported"),
            ));
        }
        let mut depth = 0;
        while w.has(&format!("{}.norm1.weight", naming.block(depth))) {
            depth += 1;
        }
        let heads = options.heads.unwrap_or(dim / 64).max(1);
        if dim % heads != 0 {
            return Err(Error::Usage(format!(
                "width {dim} is not divisible by {heads} heads"
            )));
        }
        let fc1_key = format!("{}.mlp.fc1.weight", naming.block(0));
        let hidden = w.require_shape(&fc1_key)?[0];
        let pos_shape = w.require_shape(naming.pos())?;
        let positions = match pos_shape[..] {
            [1, p, d] if d == dim => p,
            _ => {
                return Err(Error::Tensor {
                    path: w.path().into(),
                    key: naming.pos().into(),
                    problem: format!("expected [1, 1 + grid^2, {dim}], found {pos_shape:?}"),
                });
            }
        };
        let pos_grid = ((positions - 1) as f64).sqrt().round() as usize;
        if pos_grid * pos_grid + 1 != positions {
            return Err(Error::Tensor {
                path: w.path().into(),
                key: naming.pos().into(),
                problem: format!("{positions} positions are not 1 class token + a square grid"),
            });
        }
        let pos_table = w.get(naming.pos(), &[1, positions, dim])?;
        let pw = w.get(&pw_key, &[dim, 3, patch, patch])?;
        let patch_w = layers::weight(
            gpu,
            &w,
            &pw_key,
            &[3 * patch * patch, dim],
            &transpose(&pw, dim, 3 * patch * patch),
        )?;
        let patch_b = vector(gpu, &w, &format!("{}.bias", naming.patch_weight()), dim)?;
        let cls = gpu.upload("cls", &[dim], &w.get(naming.cls(), &[1, 1, dim])?)?;
        // DINOv2's mask token replaces masked patches in training only.
        w.not_needed("embeddings.mask_token");
        let mut blocks = Vec::with_capacity(depth);
        for i in 0..depth {
            let b = naming.block(i);
            let (qkv, proj, ls1, ls2) = match naming {
                Naming::Timm => (
                    linear_sized(gpu, &w, &format!("{b}.attn.qkv"), dim, 3 * dim)?,
                    linear_sized(gpu, &w, &format!("{b}.attn.proj"), dim, dim)?,
                    optional_vector(gpu, &w, &format!("{b}.ls1.gamma"), dim)?,
                    optional_vector(gpu, &w, &format!("{b}.ls2.gamma"), dim)?,
                ),
                // transformers 4.x names (`attention.attention.query`, `attention.output.dense`)
                // or 5.x names (`attention.q_proj`, `attention.o_proj`).
                Naming::Dinov2 if w.has(&format!("{b}.attention.q_proj.weight")) => (
                    fused_qkv(
                        gpu,
                        &w,
                        &format!("{b}.attention"),
                        ["q_proj", "k_proj", "v_proj"],
                        dim,
                    )?,
                    linear_sized(gpu, &w, &format!("{b}.attention.o_proj"), dim, dim)?,
                    optional_vector(gpu, &w, &format!("{b}.layer_scale1.lambda1"), dim)?,
                    optional_vector(gpu, &w, &format!("{b}.layer_scale2.lambda1"), dim)?,
                ),
                Naming::Dinov2 => (
                    fused_qkv(
                        gpu,
                        &w,
                        &format!("{b}.attention.attention"),
                        ["query", "key", "value"],
                        dim,
                    )?,
                    linear_sized(gpu, &w, &format!("{b}.attention.output.dense"), dim, dim)?,
                    optional_vector(gpu, &w, &format!("{b}.layer_scale1.lambda1"), dim)?,
                    optional_vector(gpu, &w, &format!("{b}.layer_scale2.lambda1"), dim)?,
                ),
            };
            blocks.push(Block {
                norm1: norm(gpu, &w, &format!("{b}.norm1"), dim)?,
                qkv,
                proj,
                ls1,
                norm2: norm(gpu, &w, &format!("{b}.norm2"), dim)?,
                fc1: linear_sized(gpu, &w, &format!("{b}.mlp.fc1"), dim, hidden)?,
                fc2: linear_sized(gpu, &w, &format!("{b}.mlp.fc2"), hidden, dim)?,
                ls2,
            });
        }
        let norm_out = norm(gpu, &w, naming.final_norm(), dim)?;
        let head = match (naming, w.shape("head.weight")) {
            (Naming::Timm, Some(s)) if s.len() == 2 && s[0] > 0 => {
                Some(linear_sized(gpu, &w, "head", dim, s[0])?)
            }
            _ => None,
        };
        let params = w.element_count();
        Ok(Vit {
            naming,
            depth,
            dim,
            heads,
            patch,
            hidden,
            eps: 1e-6,
            pos_grid,
            pos_table,
            patch_w,
            patch_b,
            cls,
            blocks,
            norm: norm_out,
            head,
            params,
        })
    }

    /// The position table for a gh x gw grid, [1 + gh*gw, D]: the trained table when the grid
    /// matches, else its patch part resampled the way the checkpoint's own framework does it
    /// (timm's `resample_abs_pos_embed` and HF's `Dinov2Embeddings.interpolate_pos_encoding`
    /// alike: bicubic to the new size, no antialiasing).
    fn positions_for(&self, gh: usize, gw: usize) -> Vec<f32> {
        let g = self.pos_grid;
        if gh == g && gw == g {
            return self.pos_table.clone();
        }
        let d = self.dim;
        let grid = &self.pos_table[d..];
        let scale = (g as f64 / gh as f64, g as f64 / gw as f64);
        let resampled = interpolate::bicubic(grid, (g, g), d, (gh, gw), scale);
        let mut out = self.pos_table[..d].to_vec();
        out.extend(resampled);
        out
    }

    fn grid(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let (gh, gw) = (height / self.patch, width / self.patch);
        if gh == 0 || gw == 0 {
            return Err(Error::Usage(format!(
                "input {height}x{width} is smaller than one {p}x{p} patch",
                p = self.patch
            )));
        }
        Ok((gh, gw))
    }
}

/// HF keeps query, key and value (`parts`) as three Linear layers; the attention kernel wants them as
/// one [D, 3D] projection, q then k then v (timm's layout).
fn fused_qkv(
    gpu: &Gpu,
    w: &Weights,
    key: &str,
    parts: [&str; 3],
    dim: usize,
) -> Result<(Tensor, Tensor)> {
    let mut weight = Vec::with_capacity(3 * dim * dim);
    let mut bias = Vec::with_capacity(3 * dim);
    for part in parts {
        weight.extend(w.get(&format!("{key}.{part}.weight"), &[dim, dim])?);
        bias.extend(w.get(&format!("{key}.{part}.bias"), &[dim])?);
    }
    Ok((
        layers::weight(
            gpu,
            w,
            key,
            &[dim, 3 * dim],
            &transpose(&weight, 3 * dim, dim),
        )?,
        gpu.upload(key, &[3 * dim], &bias)?,
    ))
}

impl Network for Vit {
    fn describe(&self) -> String {
        let family = match self.naming {
            Naming::Timm => "ViT (timm names)",
            Naming::Dinov2 => "DINOv2 ViT (HF names)",
        };
        format!(
            "{family}: depth {}, width {}, {} heads, patch {}, MLP {}, position grid {}x{}{}",
            self.depth,
            self.dim,
            self.heads,
            self.patch,
            self.hidden,
            self.pos_grid,
            self.pos_grid,
            match &self.head {
                Some((_, b)) => format!(", head of {} classes", b.len()),
                None => ", no classifier head".into(),
            }
        )
    }

    fn arch(&self) -> &'static str {
        match self.naming {
            Naming::Timm => "vit",
            Naming::Dinov2 => "dinov2",
        }
    }

    fn parameters(&self) -> usize {
        self.params
    }

    fn f16_weights(&self) -> bool {
        self.patch_w.elem == Elem::F16
    }

    fn preprocess(&self) -> Preprocess {
        let size = (self.pos_grid * self.patch) as u32;
        match self.naming {
            // timm's augreg ViTs: mean = std = 0.5, crop 0.9, bicubic.
            Naming::Timm => Preprocess::inception(size, 0.9, Interpolation::Bicubic),
            // DINOv2 evaluation: resize 256, centre crop 224, ImageNet statistics, bicubic.
            Naming::Dinov2 => Preprocess::imagenet(224, 0.875, Interpolation::Bicubic),
        }
        .expect("preset sizes are valid")
    }

    fn taps(&self, height: usize, width: usize) -> Result<Vec<TapInfo>> {
        let (gh, gw) = self.grid(height, width)?;
        let tokens = gh * gw + 1;
        let mut taps = Vec::with_capacity(2 * self.depth + 1);
        for i in 0..self.depth {
            taps.push(TapInfo {
                name: self.naming.mlp_act(i),
                kind: TapKind::Hidden,
                depth: i,
                positions: tokens,
                channels: self.hidden,
            });
            taps.push(TapInfo {
                name: self.naming.block(i),
                kind: TapKind::Block,
                depth: i,
                positions: tokens,
                channels: self.dim,
            });
        }
        taps.push(TapInfo {
            name: self.naming.final_norm().into(),
            kind: TapKind::Other,
            depth: self.depth,
            positions: tokens,
            channels: self.dim,
        });
        Ok(taps)
    }

    fn forward(&self, gpu: &Gpu, batch: usize, height: usize, width: usize) -> Result<Forward> {
        let (gh, gw) = self.grid(height, width)?;
        let (d, p) = (self.dim, self.patch);
        let tokens = gh * gw + 1;
        let m = batch * tokens;
        let input = gpu.zeros("input", &[batch, 3, height, width])?;
        let cols = gpu.zeros("patch columns", &[batch * gh * gw, 3 * p * p])?;
        let patches = gpu.zeros("patch embeddings", &[batch * gh * gw, d])?;
        let pos = gpu.upload("positions", &[tokens, d], &self.positions_for(gh, gw))?;
        // The residual stream alternates between two buffers: a kernel cannot read and write
        // the same buffer, and the residual add reads the old stream.
        let mut x = gpu.zeros("stream a", &[batch, tokens, d])?;
        let mut x_next = gpu.zeros("stream b", &[batch, tokens, d])?;
        let h = gpu.zeros("normed", &[m, d])?;
        let qkv = gpu.zeros("qkv", &[m, 3 * d])?;
        let att = gpu.zeros("attention", &[m, d])?;
        let attention = ops::Attention::new(
            gpu,
            ops::AttentionVariant::preferred(gpu),
            batch,
            tokens,
            self.heads,
            d / self.heads,
        )?;
        let hid = gpu.zeros("mlp hidden", &[batch, tokens, self.hidden])?;
        let out = gpu.zeros("final norm", &[batch, tokens, d])?;

        let mut plan = Plan::default();
        plan.push(ops::patch_im2col(gpu, &input, p, &cols)?);
        plan.push(ops::matmul(
            gpu,
            &cols,
            3 * p * p,
            &self.patch_w,
            &patches,
            batch * gh * gw,
            Epilogue {
                bias: Some(&self.patch_b),
                ..Default::default()
            },
        )?);
        plan.push(ops::vit_tokens(gpu, &patches, &self.cls, &pos, batch, &x)?);

        let taps = self.taps(height, width)?;
        let mut tensors = Vec::with_capacity(taps.len());
        for (i, blk) in self.blocks.iter().enumerate() {
            plan.push(ops::layernorm(
                gpu,
                &x,
                &blk.norm1.0,
                &blk.norm1.1,
                self.eps,
                &h,
            )?);
            plan.push(ops::matmul(
                gpu,
                &h,
                d,
                &blk.qkv.0,
                &qkv,
                m,
                Epilogue {
                    bias: Some(&blk.qkv.1),
                    ..Default::default()
                },
            )?);
            plan.push_all(attention.dispatches(gpu, &qkv, &att)?);
            plan.push(ops::matmul(
                gpu,
                &att,
                d,
                &blk.proj.0,
                &x_next,
                m,
                Epilogue {
                    bias: Some(&blk.proj.1),
                    scale: blk.ls1.as_ref(),
                    residual: Some(&x),
                    act: Act::None,
                },
            )?);
            std::mem::swap(&mut x, &mut x_next);
            plan.push(ops::layernorm(
                gpu,
                &x,
                &blk.norm2.0,
                &blk.norm2.1,
                self.eps,
                &h,
            )?);
            plan.push(ops::matmul(
                gpu,
                &h,
                d,
                &blk.fc1.0,
                &hid,
                m,
                Epilogue {
                    bias: Some(&blk.fc1.1),
                    act: Act::Gelu,
                    ..Default::default()
                },
            )?);
            plan.tap(2 * i);
            tensors.push(hid.clone());
            plan.push(ops::matmul(
                gpu,
                &hid,
                self.hidden,
                &blk.fc2.0,
                &x_next,
                m,
                Epilogue {
                    bias: Some(&blk.fc2.1),
                    scale: blk.ls2.as_ref(),
                    residual: Some(&x),
                    act: Act::None,
                },
            )?);
            std::mem::swap(&mut x, &mut x_next);
            plan.tap(2 * i + 1);
            tensors.push(x.clone());
        }
        plan.push(ops::layernorm(
            gpu,
            &x,
            &self.norm.0,
            &self.norm.1,
            self.eps,
            &out,
        )?);
        plan.tap(2 * self.depth);
        tensors.push(out.clone());
        let logits = match &self.head {
            Some((w, b)) => {
                let classes = b.len();
                let logits = gpu.zeros("logits", &[batch, classes])?;
                // The class token of image i is row i * tokens of the normed stream.
                plan.push(ops::matmul(
                    gpu,
                    &out,
                    tokens * d,
                    w,
                    &logits,
                    batch,
                    Epilogue {
                        bias: Some(b),
                        ..Default::default()
                    },
                )?);
                Some(logits)
            }
            None => None,
        };
        Ok(Forward {
            plan,
            input,
            taps,
            tensors,
            logits,
            batch,
        })
    }
}
