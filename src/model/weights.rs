//! Checkpoint access: a memory-mapped safetensors file, tensors fetched by key with their
//! shape checked against what the architecture expects, converted from f32, f16 or bf16 to f32.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors, tensor::Metadata};

use crate::error::{Error, Result};

pub struct Weights {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    meta: Metadata,
    /// Prepended to every key asked for: checkpoints wrap the model in `module.`, `model.`,
    /// `dinov2.` and so on; detection finds the prefix once.
    prefix: String,
    used: Arc<Mutex<BTreeSet<String>>>,
    /// Whether weight matrices and kernels go to the GPU as f16 (`--f16-weights`,
    /// `layers::weight`).
    f16_storage: bool,
}

impl Weights {
    pub fn open(path: &Path) -> Result<Weights> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
        // SAFETY: the file is opened read-only; a concurrent writer truncating it is outside
        // what any tool reading weights can defend against.
        let mmap = unsafe { Mmap::map(&file) }
            .map_err(|e| Error::file(path, format!("cannot map: {e}")))?;
        let (header_len, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            Error::file(
                path,
                format!("not a valid safetensors file ({e}); is it truncated or corrupt?"),
            )
        })?;
        Ok(Weights {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            meta,
            prefix: String::new(),
            used: Arc::new(Mutex::new(BTreeSet::new())),
            f16_storage: false,
        })
    }

    /// Store weight matrices and kernels on the GPU as f16 (see `layers::weight`).
    pub fn set_f16_storage(&mut self, on: bool) {
        self.f16_storage = on;
    }

    pub fn f16_storage(&self) -> bool {
        self.f16_storage
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All keys in the file, in file order, without any prefix stripping.
    pub fn raw_keys(&self) -> Vec<String> {
        self.meta.offset_keys()
    }

    /// The `__metadata__` string map of the file, if any.
    pub fn file_metadata(&self, key: &str) -> Option<String> {
        self.meta.metadata().as_ref()?.get(key).cloned()
    }

    /// Find the prefix under which `suffix` appears (e.g. `dinov2.` for
    /// `dinov2.embeddings.cls_token`), and use it for every later lookup.
    pub fn use_prefix_of(&mut self, suffix: &str) -> bool {
        let found = self
            .raw_keys()
            .into_iter()
            .filter_map(|k| k.strip_suffix(suffix).map(str::to_string))
            .filter(|p| p.is_empty() || p.ends_with('.'))
            .min_by_key(|p| p.len());
        match found {
            Some(p) => {
                self.prefix = p;
                true
            }
            None => false,
        }
    }

    /// Elements over all tensors of the file (the parameter count, buffers included).
    pub fn element_count(&self) -> usize {
        self.meta
            .tensors()
            .values()
            .map(|i| i.shape.iter().product::<usize>())
            .sum()
    }

    pub fn has(&self, key: &str) -> bool {
        self.meta.info(&format!("{}{key}", self.prefix)).is_some()
    }

    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.meta
            .info(&format!("{}{key}", self.prefix))
            .map(|i| i.shape.clone())
    }

    fn tensor_error(&self, key: &str, problem: impl std::fmt::Display) -> Error {
        Error::Tensor {
            path: self.path.clone(),
            key: format!("{}{key}", self.prefix),
            problem: problem.to_string(),
        }
    }

    /// The shape of a tensor that must exist, as an error naming file and key otherwise.
    pub fn require_shape(&self, key: &str) -> Result<Vec<usize>> {
        self.shape(key)
            .ok_or_else(|| self.tensor_error(key, "missing from the checkpoint"))
    }

    /// Tensor `key` as f32, checked to have exactly `expected` shape.
    pub fn get(&self, key: &str, expected: &[usize]) -> Result<Vec<f32>> {
        let shape = self.require_shape(key)?;
        if shape != expected {
            return Err(
                self.tensor_error(key, format!("expected shape {expected:?}, found {shape:?}"))
            );
        }
        self.read(key)
    }

    /// Tensor `key` as f32 with whatever shape it has.
    pub fn get_any(&self, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let shape = self.require_shape(key)?;
        Ok((shape, self.read(key)?))
    }

    fn read(&self, key: &str) -> Result<Vec<f32>> {
        let full = format!("{}{key}", self.prefix);
        let info = self
            .meta
            .info(&full)
            .expect("caller checked the key exists");
        let (start, end) = info.data_offsets;
        let bytes = &self.mmap[self.data_start + start..self.data_start + end];
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(self.tensor_error(
                    key,
                    format!("dtype {other:?} is not supported (f32, f16 or bf16)"),
                ));
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.tensor_error(
                key,
                format!("holds a non-finite value ({}) at index {i}", values[i]),
            ));
        }
        self.used.lock().unwrap().insert(full);
        Ok(values)
    }

    /// Mark `key` as deliberately not read (a training-only tensor such as DINOv2's
    /// `embeddings.mask_token`), so it is not reported as unused.
    pub fn not_needed(&self, key: &str) {
        let full = format!("{}{key}", self.prefix);
        if self.meta.info(&full).is_some() {
            self.used.lock().unwrap().insert(full);
        }
    }

    /// Keys of the file never read by the model (reported so that a checkpoint of a slightly
    /// different architecture is not silently half-used).
    pub fn unused_keys(&self) -> Vec<String> {
        self.usage().unused()
    }

    /// A handle that still answers `unused` after the model has consumed these weights.
    pub fn usage(&self) -> Usage {
        Usage {
            keys: self.raw_keys(),
            used: self.used.clone(),
        }
    }
}

/// Which keys of a checkpoint its model read (`Weights::usage`).
pub struct Usage {
    keys: Vec<String>,
    used: Arc<Mutex<BTreeSet<String>>>,
}

impl Usage {
    /// Keys never read, except PyTorch's BatchNorm step counters (`num_batches_tracked`), which
    /// no forward pass uses.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap();
        self.keys
            .iter()
            .filter(|k| !used.contains(*k) && !k.ends_with("num_batches_tracked"))
            .cloned()
            .collect()
    }
}

/// [rows, cols] row-major -> [cols, rows]: PyTorch Linear weights are [out, in]; kernels read
/// B as [K = in, N = out].
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}
