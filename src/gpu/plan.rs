//! A forward pass is recorded once per (model, batch size) as a `Plan`: a list of kernel
//! dispatches, each with its pipeline, bind group and workgroup grid fixed at record time, and
//! `Tap` markers where hooks (feature read-back, statistics kernels) join the command stream.

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::tensor::{Elem, Tensor};

/// One kernel of a plan: its pipeline and one or more launches of it. Binding 0 is the kernel's
/// `Meta` uniform; bindings 1.. are the tensors in the order the kernel declares them. Work too
/// large for one launch (a tensor over the adapter's storage binding limit, a grid over its
/// workgroup limit) is split by the op into several launches over windows of its tensors
/// (`Dispatch::split`); they run back to back and count as one kernel in profiles.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub kernel: &'static str,
    pipeline: wgpu::ComputePipeline,
    launches: Vec<Launch>,
    /// Tensors copied into the textures the kernel reads, before its launches
    /// (`Dispatch::with_textures`).
    copies: Vec<TextureCopy>,
    /// Useful floating-point operations, for GFLOP/s reports.
    pub flops: u64,
    /// Bytes of the bound tensors (each read or written at least once): a lower bound on the
    /// memory traffic, for GB/s reports.
    pub bytes: u64,
}

#[derive(Debug, Clone)]
struct Launch {
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// Build a dispatch of one launch. `meta` is the kernel's uniform struct (a `#[repr(C)]`
    /// Pod whose layout matches the WGSL `Meta`).
    pub fn new<M: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &'static str,
        constants: &[(&str, f64)],
        meta: &M,
        tensors: &[&Tensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        Dispatch::split(
            gpu,
            kernel,
            constants,
            &[(*meta, tensors.to_vec(), workgroups)],
        )
    }

    /// Build a dispatch of several launches of one kernel, each with its own uniform, tensors
    /// (typically windows of larger ones) and grid.
    pub fn split<M: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &'static str,
        constants: &[(&str, f64)],
        launches: &[(M, Vec<&Tensor>, [u32; 3])],
    ) -> Result<Dispatch> {
        // Only weights are ever f16, and a kernel's weight bindings share one type (`W`).
        let f16_weights = launches
            .iter()
            .any(|(_, tensors, _)| tensors.iter().any(|t| t.elem == Elem::F16));
        let pipeline = gpu.pipeline_of(kernel, constants, f16_weights)?;
        let mut bytes = 0;
        let mut built = Vec::with_capacity(launches.len());
        for (meta, tensors, workgroups) in launches {
            bytes += tensors.iter().map(|t| t.bytes()).sum::<u64>();
            built.push(Launch {
                bind_group: bind(gpu, kernel, &pipeline, meta, tensors, *workgroups)?,
                workgroups: *workgroups,
            });
        }
        Ok(Dispatch {
            kernel,
            pipeline: pipeline.as_ref().clone(),
            launches: built,
            copies: Vec::new(),
            flops: 0,
            bytes,
        })
    }

    /// A dispatch of one launch whose bindings may be textures, with the copies that fill
    /// those textures (encoded before the launch, outside the compute pass).
    pub fn with_textures<M: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &'static str,
        constants: &[(&str, f64)],
        meta: &M,
        resources: &[Resource],
        workgroups: [u32; 3],
        copies: Vec<TextureCopy>,
    ) -> Result<Dispatch> {
        // Only weights are ever f16; the weight texture's declared format follows them.
        let f16_weights = copies.iter().any(|c| c.src.elem == Elem::F16);
        let pipeline = gpu.pipeline_of(kernel, constants, f16_weights)?;
        let bytes = resources
            .iter()
            .map(|r| match r {
                Resource::Tensor(t) => t.bytes(),
                Resource::Texture(_) => 0,
            })
            .sum::<u64>()
            + copies.iter().map(|c| c.src.bytes()).sum::<u64>();
        let bind_group = bind_resources(gpu, kernel, &pipeline, meta, resources, workgroups)?;
        Ok(Dispatch {
            kernel,
            pipeline: pipeline.as_ref().clone(),
            launches: vec![Launch {
                bind_group,
                workgroups,
            }],
            copies,
            flops: 0,
            bytes,
        })
    }

    /// `with_textures` for a kernel that reads one texture, filled by `copy`: its binding
    /// `at` (counted from binding 1) is the texture, the others `tensors` in order.
    #[allow(clippy::too_many_arguments)]
    pub fn with_texture_copy<M: bytemuck::Pod>(
        gpu: &Gpu,
        kernel: &'static str,
        constants: &[(&str, f64)],
        meta: &M,
        copy: TextureCopy,
        at: usize,
        tensors: &[&Tensor],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let view = copy.dst.create_view(&Default::default());
        let mut resources: Vec<Resource> = tensors.iter().map(|t| Resource::Tensor(t)).collect();
        resources.insert(at, Resource::Texture(&view));
        Self::with_textures(
            gpu,
            kernel,
            constants,
            meta,
            &resources,
            workgroups,
            vec![copy],
        )
    }

    /// Encode the copies into the textures this dispatch reads (outside any compute pass).
    pub fn encode_copies(&self, encoder: &mut wgpu::CommandEncoder) {
        for c in &self.copies {
            c.encode(encoder);
        }
    }

    /// Whether the dispatch has texture copies to encode before its pass.
    pub fn has_copies(&self) -> bool {
        !self.copies.is_empty()
    }

    pub fn with_flops(mut self, flops: u64) -> Dispatch {
        self.flops = flops;
        self
    }

    /// How many launches the work was split into (1 unless it exceeded the adapter's limits).
    pub fn launches(&self) -> usize {
        self.launches.len()
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        for l in &self.launches {
            pass.set_bind_group(0, &l.bind_group, &[]);
            let [x, y, z] = l.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }
}

/// A tensor laid out flat in a 2-D texture, `width` texels per row: texel i holds the tensor's
/// elements i * texel_elems .. (i + 1) * texel_elems (one for r32float, four for rgba32float or
/// rgba16float). Encoded as at most two buffer-to-texture copies (the full rows, then the last
/// partial one) before the kernel that reads the texture.
#[derive(Debug, Clone)]
pub struct TextureCopy {
    pub src: Tensor,
    pub dst: wgpu::Texture,
    pub width: u32,
    /// Bytes per texel (4, 8 or 16).
    pub texel_bytes: u32,
}

impl TextureCopy {
    /// The copy of `src`'s first `len` elements, flat in rows of `ops::TEXTURE_WIDTH` texels of
    /// `format`, into the scratch texture `purpose` (`Gpu::scratch_texture`); `None` when it
    /// would exceed the adapter's texture limits or `src`'s offset cannot start a copy (a
    /// whole number of texels).
    pub fn to_scratch(
        gpu: &Gpu,
        purpose: &'static str,
        src: &Tensor,
        len: usize,
        format: wgpu::TextureFormat,
    ) -> Option<TextureCopy> {
        // Some for every uncompressed colour format, the only kind kernels read.
        let texel_bytes = format.block_copy_size(None)?;
        if !src.offset.is_multiple_of(texel_bytes as u64) {
            return None;
        }
        let src = src.window(0, &[len]);
        let width = crate::gpu::ops::TEXTURE_WIDTH;
        let texels = src.bytes().div_ceil(texel_bytes as u64);
        let rows = u32::try_from(texels.div_ceil(width as u64).max(1)).ok()?;
        let dst = gpu.scratch_texture(purpose, format, width, rows)?;
        Some(TextureCopy {
            src,
            dst,
            width,
            texel_bytes,
        })
    }

    /// Whether this copy writes what `other` wrote: the same window of the same buffer, laid
    /// out the same way, into the same texture.
    pub fn repeats(&self, other: &TextureCopy) -> bool {
        self.dst == other.dst
            && self.src.buffer == other.src.buffer
            && self.src.offset == other.src.offset
            && self.src.bytes() == other.src.bytes()
            && (self.width, self.texel_bytes) == (other.width, other.texel_bytes)
    }

    /// Texels the tensor fills (its bytes over the texel size, rounded up).
    pub fn texels(&self) -> u64 {
        self.src.bytes().div_ceil(self.texel_bytes as u64)
    }

    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let texels = self.texels();
        let width = self.width as u64;
        let (full, tail) = (texels / width, texels % width);
        let row_bytes = width * self.texel_bytes as u64;
        let copy = |encoder: &mut wgpu::CommandEncoder, offset: u64, y: u64, w: u64, h: u64| {
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.src.buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset,
                        bytes_per_row: Some(row_bytes as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture: &self.dst,
                    mip_level: 0,
                    origin: wgpu::Origin3d {
                        x: 0,
                        y: y as u32,
                        z: 0,
                    },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
            );
        };
        if full > 0 {
            copy(encoder, self.src.offset, 0, width, full);
        }
        if tail > 0 {
            copy(encoder, self.src.offset + full * row_bytes, full, tail, 1);
        }
    }
}

/// Scratch texture purpose of the flat texture copies of a tap that its statistics
/// (`stats_tap_texture`) and its sketch (`rdm_sketch_texture`) read: the same copy, so
/// `drop_repeated_copies` keeps one of the two.
pub const TAP_TEXTURE: &str = "tap";

/// Drop every texture copy that repeats the copy last made into the same texture
/// (`TextureCopy::repeats`). Only for steps that write none of their copies' sources, such as a
/// tap's hooks (statistics and sketch read the tap and write buffers of their own): there the
/// repeated copy would write what the texture already holds.
pub fn drop_repeated_copies(steps: &mut [Step]) {
    let mut last: Vec<TextureCopy> = Vec::new();
    for step in steps {
        if let Step::Kernel(d) = step {
            d.copies
                .retain(|c| match last.iter_mut().find(|l| l.dst == c.dst) {
                    Some(l) if c.repeats(l) => false,
                    Some(l) => {
                        *l = c.clone();
                        true
                    }
                    None => {
                        last.push(c.clone());
                        true
                    }
                });
        }
    }
}

/// What a kernel binding holds: a tensor (a storage buffer, or a window of one) or a texture.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Tensor(&'a Tensor),
    Texture(&'a wgpu::TextureView),
}

/// The bind group of one launch, after checking the grid and every binding against the
/// adapter's limits (an op that can split its work does so before this; what reaches here
/// over a limit cannot be split, and the error says which limit and what to change).
fn bind<M: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: &'static str,
    pipeline: &wgpu::ComputePipeline,
    meta: &M,
    tensors: &[&Tensor],
    workgroups: [u32; 3],
) -> Result<wgpu::BindGroup> {
    let resources: Vec<Resource> = tensors.iter().map(|t| Resource::Tensor(t)).collect();
    bind_resources(gpu, kernel, pipeline, meta, &resources, workgroups)
}

fn bind_resources<M: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: &'static str,
    pipeline: &wgpu::ComputePipeline,
    meta: &M,
    resources: &[Resource],
    workgroups: [u32; 3],
) -> Result<wgpu::BindGroup> {
    let tensors: Vec<&Tensor> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Tensor(t) => Some(*t),
            Resource::Texture(_) => None,
        })
        .collect();
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
    let binding_limit = gpu.limits.max_storage_buffer_binding_size;
    let align = gpu.limits.min_storage_buffer_offset_alignment as u64;
    for t in &tensors {
        let size = t.bytes().max(4);
        if size > binding_limit {
            return Err(Error::Limit {
                what: format!("kernel '{kernel}' binding of a {:?} tensor", t.shape),
                needed: size,
                limit: binding_limit,
                adapter: gpu.info.name.clone(),
                advice: "this kernel cannot split that tensor; if it holds activations use a \
                         smaller --batch or smaller images, if it holds weights an adapter with \
                         a larger storage binding limit"
                    .into(),
            });
        }
        debug_assert!(
            t.offset % align == 0,
            "kernel '{kernel}': window offset {} is not a multiple of {align}",
            t.offset
        );
    }
    let meta_bytes = bytemuck::bytes_of(meta);
    let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(kernel),
        size: (meta_bytes.len().div_ceil(16) * 16).max(16) as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue.write_buffer(&uniform, 0, meta_bytes);
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniform.as_entire_binding(),
    }];
    for (i, r) in resources.iter().enumerate() {
        let t = match r {
            Resource::Tensor(t) => t,
            Resource::Texture(view) => {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: wgpu::BindingResource::TextureView(view),
                });
                continue;
            }
        };
        // Whole buffers are bound whole (a reused activation buffer may be larger than the
        // tensor it holds now); only buffers over the binding limit and windows are bound by
        // range.
        let resource = if t.offset == 0 && t.buffer.size() <= binding_limit {
            t.buffer.as_entire_binding()
        } else {
            // Binding sizes are whole 4-byte words; buffers are padded to 16 bytes.
            let size = t.bytes().div_ceil(4).max(1) * 4;
            wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &t.buffer,
                offset: t.offset,
                size: std::num::NonZeroU64::new(size.min(t.buffer.size() - t.offset)),
            })
        };
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource,
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
    Ok(bind_group)
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
    /// Copy a tensor (a window of its buffer: `Tensor::window`) into another buffer at a byte
    /// offset (feature read-back staging, blocks of a row store).
    Copy {
        src: Tensor,
        dst: wgpu::Buffer,
        dst_offset: u64,
    },
    /// Tap number `i` of the model holds its value here; hooks expand it into steps.
    Tap(usize),
}

/// One dispatch of a profiled run of a plan (`Plan::profile`), in plan order; `bench`
/// reports them as they are.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelProfile {
    pub kernel: &'static str,
    /// GPU seconds of the kernel's compute pass.
    pub seconds: f64,
    /// GPU seconds from the end of the kernel before (or the start of the plan) to the start
    /// of this one: the texture copies this kernel reads, any buffer copies recorded before
    /// it, and a pass boundary (tens of microseconds on lavapipe).
    pub copy_seconds: f64,
    /// Useful floating-point operations (0 for kernels that only move or count).
    pub flops: u64,
    /// Bytes of the buffers the dispatch binds.
    pub bytes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn push(&mut self, d: Dispatch) {
        self.steps.push(Step::Kernel(d));
    }

    /// Push the kernels of an op that takes several (e.g. attention's matmul path).
    pub fn push_all(&mut self, ds: Vec<Dispatch>) {
        self.steps.extend(ds.into_iter().map(Step::Kernel));
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
                Step::Kernel(first) => {
                    // Texture copies cannot run inside a compute pass: a kernel with copies
                    // starts a new pass after them.
                    first.encode_copies(encoder);
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("plan"),
                        timestamp_writes: None,
                    });
                    first.record(&mut pass);
                    i += 1;
                    while let Some(Step::Kernel(d)) = self.steps.get(i) {
                        if d.has_copies() {
                            break;
                        }
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
                        src.offset,
                        dst,
                        *dst_offset,
                        src.bytes(),
                    );
                    i += 1;
                }
                Step::Tap(_) => i += 1,
            }
        }
    }

    /// Run the plan once with every kernel in its own compute pass bracketed by GPU timestamps
    /// (the adapter must have TIMESTAMP_QUERY); returns the times of the first 2,047 kernels (a
    /// query set holds at most 4,096 timestamps, two of which mark the start).
    pub fn profile(&self, gpu: &Gpu) -> Result<Vec<KernelProfile>> {
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
            .take(2047)
            .collect();
        // Timestamps 0 and 1: an empty pass that marks the start, so that the first kernel's
        // copies are timed too; then kernel k's pass at 2 + 2k and 3 + 2k.
        let count = (2 + 2 * kernels.len()) as u32;
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
        let timed_pass = |encoder: &mut wgpu::CommandEncoder, label, at: u32| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(label),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &queries,
                        beginning_of_pass_write_index: Some(at),
                        end_of_pass_write_index: Some(at + 1),
                    }),
                })
                .forget_lifetime()
        };
        drop(timed_pass(&mut encoder, "start", 0));
        let mut k = 0u32;
        for step in &self.steps {
            match step {
                Step::Kernel(d) if (k as usize) < kernels.len() => {
                    d.encode_copies(&mut encoder);
                    let mut pass = timed_pass(&mut encoder, d.kernel, 2 + 2 * k);
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
        let span = |from: u64, to: u64| to.saturating_sub(from) as f64 * period;
        Ok(kernels
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (begin, end) = (ticks[2 + 2 * i], ticks[3 + 2 * i]);
                KernelProfile {
                    kernel: d.kernel,
                    seconds: span(begin, end),
                    copy_seconds: span(ticks[1 + 2 * i], begin),
                    flops: d.flops,
                    bytes: d.bytes,
                }
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
