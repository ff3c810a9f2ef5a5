//! Architectures built on the engine. Each reads its shape (depth, width, heads, patch size)
//! from the checkpoint's tensor names and shapes, uploads its weights once, and records a
//! forward `Plan` per (batch, input size) with a `Tap` marker wherever a tap's value is ready.

pub mod cnn;
pub mod convnext;
pub mod efficientnet;
pub mod interpolate;
pub mod layers;
pub mod resnet;
pub mod select;
pub mod vit;
pub mod weights;

use std::path::Path;

use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Plan, Tensor};
pub use weights::Weights;

/// What kind of point of the forward pass a tap is; analyses group taps by kind (e.g. the
/// null code's emergence depth is found per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TapKind {
    /// The output of a whole block (the residual stream of a ViT).
    Block,
    /// A hidden activation after a nonlinearity (MLP hidden after GELU, conv after ReLU).
    Hidden,
    /// A final normalisation or the stem.
    Other,
}

/// A named point of the forward pass, viewed as [N images, P positions, C channels].
#[derive(Debug, Clone, serde::Serialize)]
pub struct TapInfo {
    pub name: String,
    pub kind: TapKind,
    /// Index of the block the tap belongs to (0 for a stem), for depth plots.
    pub depth: usize,
    pub positions: usize,
    pub channels: usize,
}

/// A recorded forward pass for one batch size and input size.
pub struct Forward {
    pub plan: Plan,
    /// The input batch, [B, 3, H, W], to be written before each submission.
    pub input: Tensor,
    /// The taps in forward order; `tensors[i]` holds tap `i`'s [B, P, C] value at `Tap(i)`.
    pub taps: Vec<TapInfo>,
    pub tensors: Vec<Tensor>,
    /// [B, classes] when the model has a classifier head.
    pub logits: Option<Tensor>,
    pub batch: usize,
}

/// A loaded model.
pub trait Network {
    /// Family and size, e.g. "vit (timm names), depth 12, width 192, 3 heads, patch 16".
    fn describe(&self) -> String;
    /// Short architecture name for outputs ("vit", "dinov2", "resnet", ...).
    fn arch(&self) -> &'static str;
    fn parameters(&self) -> usize;
    /// Whether weight matrices and kernels are stored on the GPU as f16 (`--f16-weights`).
    fn f16_weights(&self) -> bool;
    /// The evaluation transform of the model's family (timm's pretrained configs).
    fn preprocess(&self) -> Preprocess;
    /// All taps for an input of `height` x `width`, in forward order.
    fn taps(&self, height: usize, width: usize) -> Result<Vec<TapInfo>>;
    fn forward(&self, gpu: &Gpu, batch: usize, height: usize, width: usize) -> Result<Forward>;
}

/// Options the user can force instead of reading them from the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Architecture family, overriding detection: vit, dinov2, resnet, efficientnet, convnext.
    pub arch: Option<String>,
    /// Attention heads (a checkpoint's shapes do not fix them); default width / 64.
    pub heads: Option<usize>,
    /// Weight matrices and convolution kernels stored on the GPU as f16 (`layers::weight`).
    pub f16_weights: bool,
}

/// Open `path`, detect the architecture from its tensor names, and upload the weights.
pub fn load(gpu: &Gpu, path: &Path, options: &ModelOptions) -> Result<Box<dyn Network>> {
    let mut weights = Weights::open(path)?;
    let arch = match &options.arch {
        Some(a) => a.to_ascii_lowercase(),
        None => detect(&mut weights).ok_or_else(|| {
            let sample: Vec<String> = weights.raw_keys().into_iter().take(5).collect();
            Error::file(
                path,
                format!(
                    "unknown architecture: no ViT, DINOv2, ResNet, EfficientNet or ConvNeXt tensor names found \
                     (first keys: {}); pass --arch to force one",
                    sample.join(", ")
                ),
            )
        })?,
    };
    let usage = weights.usage();
    weights.set_f16_storage(options.f16_weights);
    let net: Box<dyn Network> = match arch.as_str() {
        "vit" | "dinov2" => Box::new(vit::Vit::load(gpu, weights, options)?),
        "resnet" => Box::new(resnet::ResNet::load(gpu, weights)?),
        "efficientnet" => Box::new(efficientnet::EfficientNet::load(gpu, weights)?),
        "convnext" => Box::new(convnext::ConvNext::load(gpu, weights)?),
        other => {
            return Err(Error::Usage(format!(
                "unknown --arch '{other}': expected one of vit, dinov2, resnet, efficientnet, convnext"
            )));
        }
    };
    // Tensors the model never read are not an error (checkpoints carry extras: EMA copies,
    // auxiliary heads) but half-using a checkpoint of another variant must not go unnoticed.
    let unused = usage.unused();
    if !unused.is_empty() {
        let shown: Vec<&str> = unused.iter().take(5).map(String::as_str).collect();
        eprintln!(
            "warning: {}: {} tensor(s) not used by the {} model: {}{}",
            path.display(),
            unused.len(),
            net.arch(),
            shown.join(", "),
            if unused.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok(net)
}

/// The family whose marker tensor is present; also fixes the key prefix.
fn detect(weights: &mut Weights) -> Option<String> {
    const MARKERS: &[(&str, &str)] = &[
        ("blocks.0.attn.qkv.weight", "vit"),
        ("encoder.layer.0.attention.attention.query.weight", "dinov2"),
        ("encoder.layer.0.attention.q_proj.weight", "dinov2"),
        ("layer1.0.conv1.weight", "resnet"),
        ("_blocks.0._depthwise_conv.weight", "efficientnet"),
        ("blocks.0.0.conv_dw.weight", "efficientnet"),
        ("stages.0.blocks.0.conv_dw.weight", "convnext"),
    ];
    for (marker, arch) in MARKERS {
        if weights.use_prefix_of(marker) {
            return Some(arch.to_string());
        }
    }
    None
}

/// The largest batch, at most `batch`, whose forward pass fits the adapter's limits at
/// `height` x `width`: the batch is halved while recording the pass fails on a limit (a buffer
/// over the adapter's maximum, a binding that cannot be split). `say` hears why a smaller batch
/// was chosen. A limit that even one image exceeds is returned as the error, which names it.
pub fn fit_batch(
    gpu: &Gpu,
    net: &dyn Network,
    batch: usize,
    (height, width): (usize, usize),
    say: &mut dyn FnMut(String),
) -> Result<usize> {
    let mut b = batch.max(1);
    loop {
        match net.forward(gpu, b, height, width) {
            Ok(_) => return Ok(b),
            Err(e @ Error::Limit { .. }) if b > 1 => {
                let smaller = b / 2;
                say(format!(
                    "batch {b} does not fit: {e}; using batch {smaller}"
                ));
                b = smaller;
            }
            Err(e) => return Err(e),
        }
    }
}
