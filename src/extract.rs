//! `sparsescope extract`: features at chosen taps written to `.npy`, batch by batch, the job
//! thingsvision users know, with memory bounded by one batch of activations.

use std::path::{Path, PathBuf};

use crate::data::BatchSource;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Step};
use crate::model::{Network, TapInfo, select::select_taps};
use crate::npy::NpyWriter;

#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Tap names or globs; empty means every tap.
    pub taps: Vec<String>,
    pub batch: usize,
    /// Stop at the first unreadable image instead of skipping it.
    pub strict: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtractReport {
    pub images: usize,
    pub skipped: Vec<(PathBuf, String)>,
    pub taps: Vec<TapInfo>,
    pub files: Vec<PathBuf>,
    pub logits: Option<PathBuf>,
}

/// A tap's values leave the GPU through one MAP_READ buffer per tap, filled by a copy step
/// recorded right at the tap, so later kernels may reuse the activation buffer.
pub(crate) struct Readback {
    pub(crate) buffer: wgpu::Buffer,
    floats: usize,
}

pub(crate) fn readback(gpu: &Gpu, floats: usize) -> Readback {
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("feature read-back"),
        size: (floats * 4).max(4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    Readback { buffer, floats }
}

pub(crate) fn read_floats(gpu: &Gpu, r: &Readback, count: usize) -> Result<Vec<f32>> {
    gpu.map_and_wait(&r.buffer)?;
    let data = {
        let view = r
            .buffer
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu {
                context: "reading features back".into(),
                message: e.to_string(),
            })?;
        bytemuck::cast_slice::<u8, f32>(&view)[..count.min(r.floats)].to_vec()
    };
    r.buffer.unmap();
    Ok(data)
}

/// A forward plan whose chosen taps (and logits) are copied out right where they are ready.
pub struct TapReader {
    plan: crate::gpu::Plan,
    input: crate::gpu::Tensor,
    batch: usize,
    image_len: usize,
    taps: Vec<TapInfo>,
    slots: Vec<Readback>,
    logits: Option<(Readback, usize)>,
}

/// One batch's values: per chosen tap `[n, P, C]`, and `[n, classes]` logits.
pub struct BatchValues {
    pub taps: Vec<Vec<f32>>,
    pub logits: Option<Vec<f32>>,
}

impl TapReader {
    /// Record `model`'s forward pass for `batch` images of `height` x `width`, reading back the
    /// taps at indices `chosen` (into `model.taps()`).
    pub fn new(
        gpu: &Gpu,
        model: &dyn Network,
        batch: usize,
        height: usize,
        width: usize,
        chosen: &[usize],
    ) -> Result<TapReader> {
        let forward = model.forward(gpu, batch, height, width)?;
        let mut slot_of: Vec<Option<usize>> = vec![None; forward.taps.len()];
        let mut slots = Vec::with_capacity(chosen.len());
        for (k, &i) in chosen.iter().enumerate() {
            slot_of[i] = Some(k);
            slots.push(readback(gpu, forward.tensors[i].len()));
        }
        let mut plan = forward.plan.with_hooks(|i| {
            Ok(match slot_of[i] {
                Some(k) => vec![Step::Copy {
                    src: forward.tensors[i].clone(),
                    dst: slots[k].buffer.clone(),
                    dst_offset: 0,
                }],
                None => vec![],
            })
        })?;
        let logits = forward.logits.as_ref().map(|l| {
            let r = readback(gpu, l.len());
            plan.steps.push(Step::Copy {
                src: l.clone(),
                dst: r.buffer.clone(),
                dst_offset: 0,
            });
            (r, l.shape[1])
        });
        Ok(TapReader {
            plan,
            input: forward.input,
            batch,
            image_len: 3 * height * width,
            taps: chosen.iter().map(|&i| forward.taps[i].clone()).collect(),
            slots,
            logits,
        })
    }

    pub fn classes(&self) -> Option<usize> {
        self.logits.as_ref().map(|(_, c)| *c)
    }

    /// Run `n <= batch` images (NCHW `data`) and read their values back.
    pub fn run(&self, gpu: &Gpu, data: &[f32], n: usize) -> Result<BatchValues> {
        if n == 0 || n > self.batch || data.len() != n * self.image_len {
            return Err(Error::shape(
                "forward",
                format!(
                    "{} floats for {n} images of {} (batch {})",
                    data.len(),
                    self.image_len,
                    self.batch
                ),
            ));
        }
        let mut padded = data.to_vec();
        padded.resize(self.batch * self.image_len, 0.0);
        gpu.write(&self.input, &padded);
        self.plan.run(gpu)?;
        let taps = self
            .slots
            .iter()
            .zip(&self.taps)
            .map(|(r, t)| read_floats(gpu, r, n * t.positions * t.channels))
            .collect::<Result<Vec<_>>>()?;
        let logits = match &self.logits {
            Some((r, classes)) => Some(read_floats(gpu, r, n * classes)?),
            None => None,
        };
        Ok(BatchValues { taps, logits })
    }
}

/// Run `model` over `source` and write `out/<tap>.npy` ([N, P, C] f32) for the chosen taps and
/// `out/logits.npy` ([N, classes]) when the model has a head. `progress` gets images done.
pub fn extract(
    gpu: &Gpu,
    model: &dyn Network,
    mut source: BatchSource,
    out: &Path,
    options: &ExtractOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<ExtractReport> {
    let [_, height, width] = source.image_shape();
    let all = model.taps(height, width)?;
    let chosen = select_taps(&all, &options.taps)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Error::file(out, format!("cannot create the output folder: {e}")))?;
    let batch = options.batch.clamp(1, source.len().max(1));
    let reader = TapReader::new(gpu, model, batch, height, width, &chosen)?;

    let total = source.len();
    let mut writers = Vec::new();
    let mut files = Vec::new();
    for &i in &chosen {
        let path = out.join(format!("{}.npy", all[i].name));
        writers.push(NpyWriter::<f32>::create(
            &path,
            &[total, all[i].positions, all[i].channels],
        )?);
        files.push(path);
    }
    let logits_path = out.join("logits.npy");
    let mut logits_writer = match reader.classes() {
        Some(classes) => Some(NpyWriter::<f32>::create(&logits_path, &[total, classes])?),
        None => None,
    };

    let mut skipped = Vec::new();
    let mut done = 0;
    for b in &mut source {
        let b = b?;
        if let Some((path, why)) = b.skipped.first() {
            if options.strict {
                return Err(Error::file(
                    path,
                    format!("unreadable image ({why}); --strict stops here"),
                ));
            }
            skipped.extend(b.skipped.iter().cloned());
        }
        if b.is_empty() {
            continue;
        }
        let values = reader.run(gpu, &b.data, b.len())?;
        for (w, v) in writers.iter_mut().zip(&values.taps) {
            w.append(v)?;
        }
        if let (Some(w), Some(v)) = (logits_writer.as_mut(), &values.logits) {
            w.append(v)?;
        }
        done += b.len();
        progress(done);
    }
    if done == 0 {
        return Err(Error::Usage(
            "no image could be read; nothing was extracted".into(),
        ));
    }
    // All files staged before any is renamed: a write failing on the last one (a full disk)
    // leaves every earlier file in OUT as it was.
    let mut staged = Vec::with_capacity(writers.len() + 1);
    for w in writers {
        staged.push(w.stage_rows(done)?);
    }
    let has_logits = logits_writer.is_some();
    if let Some(w) = logits_writer {
        staged.push(w.stage_rows(done)?);
    }
    crate::npy::commit_all(staged)?;
    Ok(ExtractReport {
        images: done,
        skipped,
        taps: chosen.iter().map(|&i| all[i].clone()).collect(),
        files,
        logits: has_logits.then_some(logits_path),
    })
}
