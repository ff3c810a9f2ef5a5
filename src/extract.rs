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
struct Readback {
    buffer: wgpu::Buffer,
    floats: usize,
}

fn readback(gpu: &Gpu, floats: usize) -> Readback {
    let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("feature read-back"),
        size: (floats * 4).max(4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    Readback { buffer, floats }
}

fn read_floats(gpu: &Gpu, r: &Readback, count: usize) -> Result<Vec<f32>> {
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
    let forward = model.forward(gpu, batch, height, width)?;

    let mut slots: Vec<Option<Readback>> = (0..all.len()).map(|_| None).collect();
    for &i in &chosen {
        slots[i] = Some(readback(gpu, batch * all[i].positions * all[i].channels));
    }
    let plan = forward.plan.with_hooks(|i| {
        Ok(match &slots[i] {
            Some(r) => vec![Step::Copy {
                src: forward.tensors[i].clone(),
                dst: r.buffer.clone(),
                dst_offset: 0,
            }],
            None => vec![],
        })
    })?;
    let mut plan = plan;
    let logits_slot = forward.logits.as_ref().map(|l| {
        let r = readback(gpu, l.len());
        plan.steps.push(Step::Copy {
            src: l.clone(),
            dst: r.buffer.clone(),
            dst_offset: 0,
        });
        (r, l.shape[1])
    });

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
    let mut logits_writer = match &logits_slot {
        Some((_, classes)) => Some(NpyWriter::<f32>::create(&logits_path, &[total, *classes])?),
        None => None,
    };

    let mut skipped = Vec::new();
    let mut done = 0;
    let image_len = 3 * height * width;
    let mut padded = vec![0.0f32; batch * image_len];
    for b in &mut source {
        let b = b?;
        if !b.skipped.is_empty() {
            if options.strict {
                let (path, why) = &b.skipped[0];
                return Err(Error::file(
                    path,
                    format!("unreadable image ({why}); --strict stops here"),
                ));
            }
            skipped.extend(b.skipped.iter().cloned());
        }
        let n = b.len();
        if n == 0 {
            continue;
        }
        padded[..n * image_len].copy_from_slice(&b.data);
        padded[n * image_len..].fill(0.0);
        gpu.write(&forward.input, &padded);
        plan.run(gpu)?;
        for (w, &i) in writers.iter_mut().zip(&chosen) {
            let r = slots[i]
                .as_ref()
                .expect("chosen taps have read-back buffers");
            w.append(&read_floats(
                gpu,
                r,
                n * all[i].positions * all[i].channels,
            )?)?;
        }
        if let (Some(w), Some((r, classes))) = (logits_writer.as_mut(), logits_slot.as_ref()) {
            w.append(&read_floats(gpu, r, n * classes)?)?;
        }
        done += n;
        progress(done);
    }
    let images = done;
    if images == 0 {
        return Err(Error::Usage(
            "no image could be read; nothing was extracted".into(),
        ));
    }
    for w in writers {
        w.finish_rows(images)?;
    }
    if let Some(w) = logits_writer {
        w.finish_rows(images)?;
    }
    Ok(ExtractReport {
        images,
        skipped,
        taps: chosen.iter().map(|&i| all[i].clone()).collect(),
        files,
        logits: logits_slot.map(|_| logits_path),
    })
}
