//! The device: adapter choice, limits, features, the pipeline cache, buffer helpers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::ops::{AttentionVariant, MatmulVariant};
use crate::gpu::shaders;
use crate::gpu::tensor::{Elem, Tensor};
use crate::gpu::tuning::{self, Choices, Tuning};

/// How the user chose the adapter (`--backend`, `--adapter`).
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// One of vulkan, metal, dx12, gl; `None` means all backends.
    pub backend: Option<String>,
    /// A case-insensitive substring of the adapter's name.
    pub adapter: Option<String>,
    /// Where kernel choices are cached (gpu::tuning); `None`: the default cache folder.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Limits to ask for below the adapter's own (tests use them to exercise the splitting of
    /// work that a smaller adapter would need); `None` keeps the adapter's value.
    pub lower_limits: LowerLimits,
}

/// Device limits requested below what the adapter offers.
#[derive(Debug, Clone, Copy, Default)]
pub struct LowerLimits {
    pub max_storage_buffer_binding_size: Option<u64>,
    pub max_buffer_size: Option<u64>,
    pub max_compute_workgroups_per_dimension: Option<u32>,
}

impl LowerLimits {
    fn apply(&self, limits: &mut wgpu::Limits) {
        if let Some(v) = self.max_storage_buffer_binding_size {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(v);
        }
        if let Some(v) = self.max_buffer_size {
            limits.max_buffer_size = limits.max_buffer_size.min(v);
        }
        if let Some(v) = self.max_compute_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(v);
        }
    }
}

/// What every output records about the adapter that produced it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub subgroups: bool,
}

/// (kernel, override constants as bits, weights stored as f16).
type PipelineKey = (&'static str, Vec<(String, u64)>, bool);

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    lost: Arc<Mutex<Option<String>>>,
    cache_dir: Option<std::path::PathBuf>,
    tuning: std::sync::OnceLock<Tuning>,
    /// Bound where a kernel's optional input is absent (bindings cannot be left empty).
    dummy: Tensor,
    /// Bytes of the tensors made by `upload` and `upload_f16` so far (`uploaded_bytes`).
    uploaded: std::sync::atomic::AtomicU64,
    /// Scratch textures shared by the kernels that read copies of their inputs from textures
    /// (`scratch_texture`).
    scratch: Mutex<HashMap<ScratchKey, wgpu::Texture>>,
}

/// (purpose, format, width, height) of a scratch texture.
type ScratchKey = (&'static str, wgpu::TextureFormat, u32, u32);

fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => wgpu::Backends::VULKAN,
        "metal" | "mtl" => wgpu::Backends::METAL,
        "dx12" | "d3d12" => wgpu::Backends::DX12,
        "gl" | "gles" | "opengl" => wgpu::Backends::GL,
        other => {
            return Err(Error::Usage(format!(
                "unknown backend '{other}': expected one of vulkan, metal, dx12, gl"
            )));
        }
    })
}

/// Rank adapters: discrete > integrated > virtual > CPU > other; among equals prefer Vulkan,
/// Metal and DX12 over GL (GL lacks subgroups and storage-buffer limits are lower).
fn adapter_rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
        _ => 0,
    };
    (kind, backend)
}

impl Gpu {
    /// Open the best adapter allowed by `options`, asking for its own limits (wgpu's defaults
    /// are lower than what adapters offer) and the SUBGROUP and TIMESTAMP_QUERY features where
    /// they exist.
    pub fn new(options: &GpuOptions) -> Result<Gpu> {
        let backends = match &options.backend {
            Some(name) => parse_backend(name)?,
            // Without --backend, wgpu's own WGPU_BACKEND variable still applies.
            None => wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
        };
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if let Some(wanted) = &options.adapter {
            let wanted = wanted.to_lowercase();
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&wanted));
            if adapters.is_empty() {
                return Err(Error::Usage(format!(
                    "no adapter name contains '{wanted}'; available: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        adapters.sort_by_key(|a| std::cmp::Reverse(adapter_rank(&a.get_info())));
        let adapter = adapters
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                hint: match &options.backend {
                    Some(b) => format!(" for backend '{b}'"),
                    None => String::new(),
                },
            })?;
        let mut gpu = Self::from_adapter(adapter, &options.lower_limits)?;
        gpu.cache_dir = options.cache_dir.clone().or_else(tuning::default_cache_dir);
        Ok(gpu)
    }

    /// The kernel choices for this adapter: cached on disk, or timed on first use (about a
    /// second, once per adapter and version; gpu::tuning).
    pub fn choices(&self) -> Choices {
        self.tuning().choices
    }

    /// The kernel choices and where they came from.
    pub fn tuning(&self) -> &Tuning {
        self.tuning.get_or_init(|| {
            tuning::tune(self, self.cache_dir.as_deref()).unwrap_or_else(|e| {
                // Timing failed (a device error): fall back to the adapter-type rule.
                eprintln!("note: kernel timing failed ({e}); choosing kernels by adapter type");
                let cpu = self.is_cpu() && MatmulVariant::Subgroup.unsupported(self, 64).is_none();
                Tuning {
                    choices: Choices {
                        matmul: if cpu {
                            MatmulVariant::Subgroup
                        } else {
                            MatmulVariant::Tiled
                        },
                        attention: if cpu {
                            AttentionVariant::Matmul
                        } else {
                            AttentionVariant::Fused
                        },
                    },
                    source: tuning::Source::Timed {
                        file: None,
                        timings: Vec::new(),
                    },
                }
            })
        })
    }

    fn from_adapter(adapter: wgpu::Adapter, lower: &LowerLimits) -> Result<Gpu> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let mut limits = adapter.limits();
        lower.apply(&mut limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sparsescope"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_cb = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost_cb.lock().unwrap() = Some(format!("{reason:?}: {message}"));
        });
        // Validation errors are programming errors of ours; they are caught with error scopes
        // where they can happen and must never abort the process from a callback thread.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("sparsescope: uncaptured GPU error: {e}");
        }));
        let dummy_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("absent input"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            dummy: Tensor::new(dummy_buffer, vec![4]),
            device,
            queue,
            info,
            limits,
            features,
            pipelines: Mutex::new(HashMap::new()),
            lost,
            cache_dir: None,
            tuning: std::sync::OnceLock::new(),
            uploaded: std::sync::atomic::AtomicU64::new(0),
            scratch: Mutex::new(HashMap::new()),
        })
    }

    /// A software adapter (lavapipe, SwiftShader, WARP) wants kernels shaped for SIMD CPUs.
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A 16-byte buffer to bind for an optional input that is absent.
    pub fn dummy(&self) -> Tensor {
        self.dummy.clone()
    }

    pub fn has_subgroups(&self) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
    }

    pub fn summary(&self) -> AdapterSummary {
        AdapterSummary {
            name: self.info.name.clone(),
            backend: format!("{:?}", self.info.backend).to_lowercase(),
            device_type: format!("{:?}", self.info.device_type),
            driver: self.info.driver.clone(),
            driver_info: self.info.driver_info.clone(),
            subgroups: self.has_subgroups(),
        }
    }

    /// Fails with a clear message once the device is gone (driver reset, GPU removed).
    pub fn check_alive(&self) -> Result<()> {
        match self.lost.lock().unwrap().as_ref() {
            Some(reason) => Err(Error::Gpu {
                context: format!("device '{}'", self.info.name),
                message: format!("the device was lost ({reason})"),
            }),
            None => Ok(()),
        }
    }

    /// The compute pipeline of kernel `name` (file name = entry point) with these override
    /// constants, compiled once per process.
    pub fn pipeline(
        &self,
        name: &'static str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        self.pipeline_of(name, constants, false)
    }

    /// `pipeline`, with the kernel's weight bindings read as f16 when `f16_weights` is set
    /// (`shaders::source`; needs SHADER_F16).
    pub fn pipeline_of(
        &self,
        name: &'static str,
        constants: &[(&str, f64)],
        f16_weights: bool,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key: PipelineKey = (
            name,
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
            f16_weights,
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let source = shaders::source(name, f16_weights).map_err(|message| Error::Gpu {
            context: format!("kernel '{name}'"),
            message,
        })?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let descriptor = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        // SAFETY: the one check dropped is naga's loop bounding (a counter and a branch added to
        // every loop iteration, inner loops included), which guards against infinite loops.
        // Every loop in shaders/ runs to a bound taken from its parameters (a tensor extent),
        // so none is infinite. Buffer bounds checks and division guards stay as they are.
        let module = unsafe {
            self.device
                .create_shader_module_trusted(descriptor, kernel_runtime_checks())
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: None,
                module: &module,
                entry_point: Some(name),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                context: format!("compiling kernel '{name}'"),
                message: e.to_string(),
            });
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// A texture of `width` x `rows` texels or more (its height is `rows` rounded up to a power
    /// of two) that kernels read a copy of their input from (`TextureCopy`), shared by every
    /// dispatch that asks for the same `purpose` and format: the copy into it and the kernel
    /// that reads it are consecutive in the command stream, so dispatches never need it at the
    /// same time, and the few sizes keep its memory within twice the largest request. `None`
    /// when `rows` exceeds the adapter's texture size limit.
    pub fn scratch_texture(
        &self,
        purpose: &'static str,
        format: wgpu::TextureFormat,
        width: u32,
        rows: u32,
    ) -> Option<wgpu::Texture> {
        let max = self.limits.max_texture_dimension_2d;
        let height = rows.max(1).checked_next_power_of_two()?;
        if width > max || height > max {
            return None;
        }
        let key = (purpose, format, width, height);
        let mut scratch = self.scratch.lock().unwrap();
        let texture = scratch.entry(key).or_insert_with(|| {
            self.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(purpose),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                // Kernels bind it as a read-only storage texture (cheaper to load from
                // than a sampled one on lavapipe: subgroup_loads_texture.wgsl).
                usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            })
        });
        Some(texture.clone())
    }

    /// A storage buffer of `len` f32 (or 4-byte) elements, refusing sizes over the adapter's
    /// buffer limit. Buffers over the binding limit are fine: ops bind them by windows, splitting
    /// their work (`Dispatch::split`), or say which limit stops them.
    pub fn zeros(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        let buffer = self.storage_buffer(label, (len.max(1) * 4) as u64)?;
        Ok(Tensor::new(buffer, shape.to_vec()))
    }

    pub fn storage_buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer> {
        let size = size.div_ceil(16) * 16;
        let limit = self.limits.max_buffer_size;
        if size > limit {
            return Err(Error::Limit {
                what: format!("buffer '{label}'"),
                needed: size,
                limit,
                adapter: self.info.name.clone(),
                advice: "use a smaller --batch or smaller input images".into(),
            });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// Upload 4-byte elements (f32, u32) into a new storage tensor.
    pub fn upload<T: bytemuck::Pod>(
        &self,
        label: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<Tensor> {
        assert_eq!(std::mem::size_of::<T>(), 4, "tensors hold 4-byte elements");
        check_upload(label, shape, data.len())?;
        let t = self.zeros(label, shape)?;
        self.queue
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        self.count_upload(&t);
        Ok(t)
    }

    /// Upload f32 weights stored as f16 (round to nearest even) into a new storage tensor;
    /// kernels read them back as f32. Fails when the adapter lacks SHADER_F16. A value beyond
    /// f16's range becomes infinite: callers check with `beyond_f16` first.
    pub fn upload_f16(&self, label: &str, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        if !self.features.contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Usage(format!(
                "adapter '{}' cannot read f16 in shaders (no SHADER_F16): leave out --f16-weights",
                self.info.name
            )));
        }
        let len = check_upload(label, shape, data.len())?;
        let halves: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
        let buffer = self.storage_buffer(label, (len.max(1) * 2) as u64)?;
        // write_buffer takes whole 4-byte words: an odd count is padded with one zero half.
        let mut bytes: Vec<u8> = bytemuck::cast_slice(&halves).to_vec();
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        self.queue.write_buffer(&buffer, 0, &bytes);
        let mut t = Tensor::new(buffer, shape.to_vec());
        t.elem = Elem::F16;
        self.count_upload(&t);
        Ok(t)
    }

    fn count_upload(&self, t: &Tensor) {
        self.uploaded
            .fetch_add(t.bytes(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes of every tensor made by `upload` or `upload_f16` so far: right after loading a
    /// model, the model's weights on the GPU.
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Overwrite a tensor's contents (e.g. the input of the next batch).
    pub fn write<T: bytemuck::Pod>(&self, t: &Tensor, data: &[T]) {
        self.queue
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
    }

    /// Blocking read-back of a whole tensor (tests, finalisation; never per batch in a run).
    pub fn read<T: bytemuck::Pod>(&self, t: &Tensor) -> Result<Vec<T>> {
        assert_eq!(t.elem, Elem::F32, "read() returns 4-byte elements");
        let bytes = self.read_bytes(&t.buffer, t.offset, t.bytes())?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    pub fn read_bytes(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
        let padded = size.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: padded.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, padded);
        self.queue.submit([encoder.finish()]);
        self.map_and_wait(&staging)?;
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Gpu {
                    context: "reading results back".into(),
                    message: e.to_string(),
                })?;
            view[..size as usize].to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Map a MAP_READ buffer and wait until the GPU is done with it.
    pub fn map_and_wait(&self, buffer: &wgpu::Buffer) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Gpu {
                context: "reading results back".into(),
                message: e.to_string(),
            }),
            Err(_) => Err(Error::Gpu {
                context: "reading results back".into(),
                message: "the map callback never ran".into(),
            }),
        }
    }

    /// Block until all submitted work is done. Waits in slices of a second and checks between
    /// them whether the device was lost, so a lost device is reported instead of waited on;
    /// work that runs longer than `SPARSESCOPE_GPU_TIMEOUT` seconds (default 1800) is reported
    /// as a hang.
    pub fn wait(&self) -> Result<()> {
        let limit = std::env::var("SPARSESCOPE_GPU_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .unwrap_or(1800.0);
        let started = std::time::Instant::now();
        loop {
            self.check_alive()?;
            let slice = std::time::Duration::from_secs(1);
            match self.device.poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(slice),
            }) {
                Ok(_) => break,
                Err(wgpu::PollError::Timeout) => {
                    if started.elapsed().as_secs_f64() >= limit {
                        return Err(Error::Gpu {
                            context: format!("waiting for device '{}'", self.info.name),
                            message: format!(
                                "no progress for {limit:.0} s: the GPU hangs or the work is too \
                                 large (use a smaller --batch, or raise SPARSESCOPE_GPU_TIMEOUT)"
                            ),
                        });
                    }
                }
                Err(e) => {
                    self.check_alive()?;
                    return Err(Error::Gpu {
                        context: format!("waiting for device '{}'", self.info.name),
                        message: e.to_string(),
                    });
                }
            }
        }
        self.check_alive()
    }
}

/// The element count of `shape`, if `given` elements fill it.
fn check_upload(label: &str, shape: &[usize], given: usize) -> Result<usize> {
    let len: usize = shape.iter().product();
    if len != given {
        return Err(Error::shape(
            label,
            format!("{given} elements given for shape {shape:?} ({len} elements)"),
        ));
    }
    Ok(len)
}

/// The runtime checks naga adds to our kernels: all but loop bounding (see `Gpu::pipeline`).
fn kernel_runtime_checks() -> wgpu::ShaderRuntimeChecks {
    let mut checks = wgpu::ShaderRuntimeChecks::checked();
    checks.force_loop_bounding = false;
    checks
}
