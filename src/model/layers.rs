//! Loading the parameter-holding layers every family shares: Linear layers (also 1x1 convs used
//! as one), normalisation affines and plain vectors, each uploaded once.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor, beyond_f16};
use crate::model::weights::{Weights, transpose};

/// A Linear layer `key` as ([in, out] weight, [out] bias): PyTorch stores [out, in] (or
/// [out, in, 1, 1] for a 1x1 conv used as one); kernels read B as [K = in, N = out].
pub fn linear(gpu: &Gpu, w: &Weights, key: &str) -> Result<(Tensor, Tensor)> {
    let wk = format!("{key}.weight");
    let shape = w.require_shape(&wk)?;
    let (out, inp) = match shape[..] {
        [o, i] | [o, i, 1, 1] => (o, i),
        _ => {
            return Err(Error::Tensor {
                path: w.path().into(),
                key: wk,
                problem: format!("expected a Linear weight [out, in], found {shape:?}"),
            });
        }
    };
    let data = w.get(&wk, &shape)?;
    Ok((
        weight(gpu, w, &wk, &[inp, out], &transpose(&data, out, inp))?,
        vector(gpu, w, &format!("{key}.bias"), out)?,
    ))
}

/// A weight matrix or convolution kernel `key` (what matmul and conv kernels read as `W`),
/// uploaded as f16 when the model is loaded with `--f16-weights` (`Weights::f16_storage`),
/// else as f32. Biases, norms and other vectors stay f32.
pub fn weight(gpu: &Gpu, w: &Weights, key: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
    if !w.f16_storage() {
        return gpu.upload(key, shape, data);
    }
    if let Some((_, v)) = beyond_f16(data) {
        return Err(Error::Tensor {
            path: w.path().into(),
            key: key.into(),
            problem: format!(
                "holds {v}, beyond f16's range (65504): load the model without --f16-weights"
            ),
        });
    }
    gpu.upload_f16(key, shape, data)
}

/// `linear` that must map `input` features to `output` (the architecture's expectation).
pub fn linear_sized(
    gpu: &Gpu,
    w: &Weights,
    key: &str,
    input: usize,
    output: usize,
) -> Result<(Tensor, Tensor)> {
    let wk = format!("{key}.weight");
    let shape = w.require_shape(&wk)?;
    if shape != [output, input] {
        return Err(Error::Tensor {
            path: w.path().into(),
            key: wk,
            problem: format!("expected shape {:?}, found {shape:?}", [output, input]),
        });
    }
    linear(gpu, w, key)
}

/// Tensor `key` of exactly `len` elements.
pub fn vector(gpu: &Gpu, w: &Weights, key: &str, len: usize) -> Result<Tensor> {
    gpu.upload(key, &[len], &w.get(key, &[len])?)
}

/// `vector` when the checkpoint has `key` (LayerScale, optional biases).
pub fn optional_vector(gpu: &Gpu, w: &Weights, key: &str, len: usize) -> Result<Option<Tensor>> {
    if w.has(key) {
        Ok(Some(vector(gpu, w, key, len)?))
    } else {
        Ok(None)
    }
}

/// A normalisation's affine (`key.weight`, `key.bias`), [dim] each.
pub fn norm(gpu: &Gpu, w: &Weights, key: &str, dim: usize) -> Result<(Tensor, Tensor)> {
    Ok((
        vector(gpu, w, &format!("{key}.weight"), dim)?,
        vector(gpu, w, &format!("{key}.bias"), dim)?,
    ))
}
