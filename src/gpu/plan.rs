//! A forward pass is recorded once per (model, batch size) as a `Plan`: a list of kernel
//! dispatches, each with its pipeline, bind group and workgroup grid fixed at record time, and
//! `Tap` markers where hooks (feature read-back, statistics kernels) join the command stream.

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::tensor::Tensor;

/// One kernel launch. Binding 0 is the kernel's `Meta` uniform; bindings 1.. are the tensors in
/// the order the kernel declares them.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub kernel: &'static str,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
    /// Useful floating-point operations, for GFLOP/s reports.
    pub flops: u64,
    /// Bytes of the bound tensors (each read or written at least once): a lower bound on the
    /// memory traffic, for GB/s reports.
    pub bytes: u64,
}

impl Dispatch {
    /// Build a dispatch. `meta` is the kernel's uniform struct (a `#[repr(C)]` Pod whose
    /// layout matches the WGSL `Meta`).
    pub fn new<M: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &'static str,
        constants: &[(&str, f64)],
        meta: &M,
        tensors: &[&Tensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let max = gpu.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(Error::Limit {
                what: format!("kernel '{kernel}' grid {workgroups:?}"),
                needed: *workgroups.iter().max().unwrap() as u64,
                limit: max as u64,
                adapter: gpu.info.name.clone(),
                advice: "use a smaller --batch".into(),
            });
        }
        let pipeline = gpu.pipeline(kernel, constants)?;
        let meta_bytes = bytemuck::bytes_of(meta);
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(kernel),
            size: (meta_bytes.len().div_ceil(16) * 16).max(16) as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&uniform, 0, meta_bytes);
        let bytes = tensors.iter().map(|t| t.len() as u64 * 4).sum();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, t) in tensors.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: t.buffer.as_entire_binding(),
            });
        }
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                context: format!("binding kernel '{kernel}'"),
                message: e.to_string(),
            });
        }
        Ok(Dispatch {
            kernel,
            pipeline: pipeline.as_ref().clone(),
            bind_group,
            workgroups,
            flops: 0,
            bytes,
        })
    }

    pub fn with_flops(mut self, flops: u64) -> Dispatch {
        self.flops = flops;
        self
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Split `groups` workgroups into a grid that respects the per-dimension limit (65,535 on many
/// adapters). Kernels recover the linear index as `wid.x + wid.y * nwg.x` and skip past the end.
pub fn grid(gpu: &Gpu, groups: usize) -> [u32; 3] {
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if groups <= max {
        [groups.max(1) as u32, 1, 1]
    } else {
        let y = groups.div_ceil(max);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}

/// One step of a recorded forward pass.
#[derive(Debug, Clone)]
pub enum Step {
    Kernel(Dispatch),
    /// Copy a tensor into another buffer at a byte offset (feature read-back staging).
    Copy {
        src: Tensor,
        dst: wgpu::Buffer,
        dst_offset: u64,
    },
    /// Tap number `i` of the model holds its value here; hooks expand it into steps.
    Tap(usize),
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn push(&mut self, d: Dispatch) {
        self.steps.push(Step::Kernel(d));
    }

    pub fn tap(&mut self, index: usize) {
        self.steps.push(Step::Tap(index));
    }

    /// Replace every `Tap(i)` with the steps `hook(i)` returns.
    pub fn with_hooks(&self, mut hook: impl FnMut(usize) -> Result<Vec<Step>>) -> Result<Plan> {
        let mut steps = Vec::with_capacity(self.steps.len());
        for s in &self.steps {
            match s {
                Step::Tap(i) => steps.extend(hook(*i)?),
                other => steps.push(other.clone()),
            }
        }
        Ok(Plan { steps })
    }

    pub fn flops(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Kernel(d) => d.flops,
                _ => 0,
            })
            .sum()
    }

    /// Record all steps into `encoder`: consecutive kernels share one compute pass.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut i = 0;
        while i < self.steps.len() {
            match &self.steps[i] {
                Step::Kernel(_) => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("plan"),
                        timestamp_writes: None,
                    });
                    while let Some(Step::Kernel(d)) = self.steps.get(i) {
                        d.record(&mut pass);
                        i += 1;
                    }
                }
                Step::Copy {
                    src,
                    dst,
                    dst_offset,
                } => {
                    encoder.copy_buffer_to_buffer(
                        &src.buffer,
                        0,
                        dst,
                        *dst_offset,
                        (src.len() * 4) as u64,
                    );
                    i += 1;
                }
                Step::Tap(_) => i += 1,
            }
        }
    }

    /// Run the plan once with every kernel in its own compute pass bracketed by GPU timestamps
    /// (the adapter must have TIMESTAMP_QUERY); returns (kernel, flops, bytes, seconds) for the
    /// first 2,048 kernels (a query set holds at most 4,096 timestamps).
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<(&'static str, u64, u64, f64)>> {
        if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Err(Error::Gpu {
                context: "profiling".into(),
                message: format!("adapter '{}' has no timestamp queries", gpu.info.name),
            });
        }
        let kernels: Vec<&Dispatch> = self
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Kernel(d) => Some(d),
                _ => None,
            })
            .take(2048)
            .collect();
        let count = (2 * kernels.len()).max(2) as u32;
        let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let size = count as u64 * 8;
        let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let mut k = 0u32;
        for step in &self.steps {
            match step {
                Step::Kernel(d) if (k as usize) < kernels.len() => {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(d.kernel),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &queries,
                            beginning_of_pass_write_index: Some(2 * k),
                            end_of_pass_write_index: Some(2 * k + 1),
                        }),
                    });
                    d.record(&mut pass);
                    k += 1;
                }
                other => Plan {
                    steps: vec![other.clone()],
                }
                .encode(&mut encoder),
            }
        }
        encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
        gpu.queue.submit([encoder.finish()]);
        let ticks: Vec<u64> = gpu
            .read_bytes(&resolved, 0, size)?
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let period = gpu.queue.get_timestamp_period() as f64 * 1e-9;
        Ok(kernels
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let t = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                (d.kernel, d.flops, d.bytes, t)
            })
            .collect())
    }

    /// Submit the plan and return without waiting.
    pub fn submit(&self, gpu: &Gpu) -> wgpu::SubmissionIndex {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder);
        gpu.queue.submit([encoder.finish()])
    }

    /// Submit and wait.
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        self.submit(gpu);
        gpu.wait()
    }
}
