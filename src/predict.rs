//! `sparsescope predict`: top-k ImageNet classes of a classifier for a few images.

use std::path::PathBuf;

use crate::data::{ImageSet, load_image};
use crate::error::{Error, Result};
use crate::extract::TapReader;
use crate::gpu::Gpu;
use crate::model::Network;

/// ImageNet-1k class names in class-index order (`wnid<TAB>name` per line; see models/README.md).
const IMAGENET_CLASSES: &str = include_str!("../models/imagenet_classes.txt");

/// The human-readable name of ImageNet-1k class `index`.
pub fn imagenet_class(index: usize) -> Option<&'static str> {
    IMAGENET_CLASSES
        .lines()
        .nth(index)
        .and_then(|l| l.split('\t').nth(1))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    /// (class index, class name, probability), most probable first.
    pub top: Vec<(usize, String, f64)>,
}

/// Softmax probabilities of `logits` in f64, numerically stable (the maximum is subtracted).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `k` most probable classes of each image, preprocessed as the model's family expects.
pub fn predict(
    gpu: &Gpu,
    model: &dyn Network,
    images: &[PathBuf],
    k: usize,
) -> Result<Vec<Prediction>> {
    let set = ImageSet::from_paths(images.iter().cloned())?;
    let pre = model.preprocess();
    let [_, h, w] = pre.image_shape();
    let reader = TapReader::new(gpu, model, 1, h, w, &[])?;
    let classes = reader.classes().ok_or_else(|| {
        Error::Usage(format!(
            "this {} has no classifier head; predict needs one",
            model.arch()
        ))
    })?;
    let mut out = Vec::with_capacity(set.len());
    for entry in &set.entries {
        let input = load_image(&entry.path, &pre)?;
        let logits = reader
            .run(gpu, &input, 1)?
            .logits
            .expect("the reader has a head");
        let probs = softmax(&logits);
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
        let top = order
            .into_iter()
            .take(k)
            .map(|c| {
                let name = if classes == 1000 {
                    imagenet_class(c).unwrap_or("?").to_string()
                } else {
                    format!("class {c}")
                };
                (c, name, probs[c])
            })
            .collect();
        out.push(Prediction {
            image: entry.path.clone(),
            top,
        });
    }
    Ok(out)
}
