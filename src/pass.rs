//! One batch of the streaming statistics pass: the model's forward plan with, at every chosen
//! tap, the statistics kernels, the flat Gram accumulator and the copy of the pooled features
//! recorded right where the tap's value is ready. `run` drives it over a dataset; `bench` times
//! it against the forward plan alone.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Plan, Step, drop_repeated_copies};
use crate::model::{Forward, Network, TapInfo};
use crate::rdm::{FlatMode, GramAccumulator};
use crate::stats::{StatsConfig, TapStats};

pub struct StatsPass {
    pub forward: Forward,
    /// The chosen taps, in forward order.
    pub taps: Vec<TapInfo>,
    pub stats: Vec<TapStats>,
    pub grams: Vec<GramAccumulator>,
    chosen: Vec<usize>,
    /// `slot[i]`: position in `taps` of the model's tap `i`, if chosen.
    slot: Vec<Option<usize>>,
    /// Every tap's pooled features of a batch, tap k from byte `pooled_offsets[k]`.
    pooled_readback: wgpu::Buffer,
    pooled_offsets: Vec<u64>,
    batch: usize,
    image_len: usize,
    /// The plan of a batch, recorded at the first one: its steps read the batch's valid count
    /// and labels from buffers written before each submission, so no uniform buffer or bind
    /// group is created per batch.
    plan: Option<Plan>,
}

impl StatsPass {
    /// Record `model` for `batch` images of `height` x `width` with statistics at the taps
    /// `chosen` (indices into `model.taps()`), flat RDMs in `modes[k]` for up to `capacity`
    /// images in all.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &Gpu,
        model: &dyn Network,
        chosen: &[usize],
        batch: usize,
        (height, width): (usize, usize),
        config: &StatsConfig,
        modes: &[FlatMode],
        capacity: usize,
    ) -> Result<StatsPass> {
        let forward = model.forward(gpu, batch, height, width)?;
        let taps: Vec<TapInfo> = chosen.iter().map(|&i| forward.taps[i].clone()).collect();
        let stats = taps
            .iter()
            .map(|t| TapStats::new(gpu, t, batch, config))
            .collect::<Result<_>>()?;
        let grams = taps
            .iter()
            .zip(modes)
            .map(|(t, &mode)| {
                GramAccumulator::new(gpu, mode, t.positions * t.channels, capacity, batch)
            })
            .collect::<Result<_>>()?;
        // Every tap's pooled features land in one read-back buffer, tap after tap, so that a
        // batch maps it once instead of once per tap (ResNet-50 has 49 taps).
        let mut pooled_offsets = Vec::with_capacity(taps.len());
        let mut pooled_bytes = 0u64;
        for t in &taps {
            pooled_offsets.push(pooled_bytes);
            pooled_bytes += (batch * t.channels * 4) as u64;
        }
        let pooled_readback = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pooled read-back"),
            size: pooled_bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut slot = vec![None; forward.taps.len()];
        for (k, &i) in chosen.iter().enumerate() {
            slot[i] = Some(k);
        }
        Ok(StatsPass {
            forward,
            taps,
            stats,
            grams,
            chosen: chosen.to_vec(),
            slot,
            pooled_readback,
            pooled_offsets,
            batch,
            image_len: 3 * height * width,
            plan: None,
        })
    }

    /// Run `n` images (NCHW `data`, `n <= batch`, one label each when classes are set up) through
    /// the forward pass and every accumulator; returns each tap's pooled features `[n, C]`.
    pub fn run_batch(
        &mut self,
        gpu: &Gpu,
        mut data: Vec<f32>,
        n: usize,
        labels: Option<&[u32]>,
    ) -> Result<Vec<Vec<f32>>> {
        if n == 0 || n > self.batch || data.len() != n * self.image_len {
            return Err(Error::shape(
                "statistics pass",
                format!(
                    "{} floats for {n} images of {} (batch {})",
                    data.len(),
                    self.image_len,
                    self.batch
                ),
            ));
        }
        self.begin_batch(gpu, n, labels)?;
        data.resize(self.batch * self.image_len, 0.0);
        gpu.write(&self.forward.input, &data);
        self.plan
            .as_ref()
            .expect("recorded by begin_batch")
            .run(gpu)?;
        read_pooled(
            gpu,
            &self.pooled_readback,
            &self.pooled_offsets,
            &self.taps,
            n,
        )
    }

    /// The plan of one full batch as `run_batch` records it, for profiling (running it adds
    /// a full batch to the accumulators).
    pub fn profiled_plan(&mut self, gpu: &Gpu) -> Result<Plan> {
        self.begin_batch(gpu, self.batch, None)?;
        Ok(self.plan.clone().expect("recorded by begin_batch"))
    }

    /// Write the per-batch state of `n` images and record the plan at the first batch.
    fn begin_batch(&mut self, gpu: &Gpu, n: usize, labels: Option<&[u32]>) -> Result<()> {
        for k in 0..self.taps.len() {
            self.grams[k].begin_batch(gpu, n)?;
            self.stats[k].set_batch(gpu, n, labels)?;
        }
        if self.plan.is_none() {
            let mut steps_of: Vec<Vec<Step>> = Vec::with_capacity(self.taps.len());
            for (k, &i) in self.chosen.iter().enumerate() {
                let tensor = &self.forward.tensors[i];
                let mut steps = self.stats[k].record(gpu, tensor)?;
                steps.extend(self.grams[k].steps(gpu, tensor)?);
                // The statistics and the sketch read the same texture copy of the tap.
                drop_repeated_copies(&mut steps);
                steps.push(Step::Copy {
                    src: self.stats[k].pooled().clone(),
                    dst: self.pooled_readback.clone(),
                    dst_offset: self.pooled_offsets[k],
                });
                steps_of.push(steps);
            }
            self.plan = Some(self.forward.plan.with_hooks(|i| {
                Ok(self.slot[i]
                    .map(|k| steps_of[k].clone())
                    .unwrap_or_default())
            })?);
        }
        Ok(())
    }
}

/// The first `n` images' pooled features `[n, C]` of every tap, from the one read-back buffer.
fn read_pooled(
    gpu: &Gpu,
    buffer: &wgpu::Buffer,
    offsets: &[u64],
    taps: &[TapInfo],
    n: usize,
) -> Result<Vec<Vec<f32>>> {
    gpu.map_and_wait(buffer)?;
    let features = {
        let view = buffer
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu {
                context: "reading pooled features back".into(),
                message: e.to_string(),
            })?;
        let all = bytemuck::cast_slice::<u8, f32>(&view);
        taps.iter()
            .zip(offsets)
            .map(|(t, &at)| {
                let first = (at / 4) as usize;
                all[first..first + n * t.channels].to_vec()
            })
            .collect()
    };
    buffer.unmap();
    Ok(features)
}
