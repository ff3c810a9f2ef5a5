//! `TapStats`: the statistics of one tap, accumulated on the GPU inside the forward command
//! stream. Per batch, three dispatches run right at the tap (while its tensor is valid):
//! `stats_tap` (or `stats_tap_scalar` when C % 4 != 0) reads the tap once and writes per-batch
//! partials, `stats_fold` and `stats_fold_channels` fold them into totals that stay on the GPU
//! (64-bit counts as u32 pairs with carry, sums as double-f32 pairs) and write the batch's
//! pooled features. After the last batch `finish` reads the totals back once and finalises them
//! in f64 (`TapTotals`). Nothing is read back per batch except what the caller copies out of
//! `pooled()` (and `hoyer_tokens()` when asked), which are per-image by definition.
//!
//! Exactness: a batch holds fewer than 2^32 entries (checked in `new`), so every per-batch u32
//! counter is exact; totals are 64-bit. Moments are sums of (x - shift) with the shift taken
//! from the first batch, with exact TwoSum error terms per lane and double-f32 across lanes, workgroups and
//! batches. The kernels' comments give the layout of every buffer.

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, LOOP_BUDGET, Step, TAP_TEXTURE, Tensor, TextureCopy, grid};
use crate::model::TapInfo;
use crate::stats::joint::{JointBins, LOG_WORDS};
use crate::stats::spec::{Bin, PosScale, StatsConfig, log_mantissa_thresholds};
use crate::stats::totals::{Moments, RawCounts, TapTotals};

/// Positions per work item (`CHUNK` in shaders/stats_tap_common.wgsl).
pub const CHUNK: usize = 64;
/// Invocations per `stats_tap` workgroup.
const WG: usize = 8;
/// Words of each invocation's private histogram array, and of the workgroup's merged one
/// (`HIST_WORDS` in the shader).
const HIST_WORDS: usize = 1024;
/// Workgroup memory `stats_tap` declares, in bytes: the merged histograms, the Hoyer scratch
/// (CHUNK * WG vec2) and the final reductions.
const TAP_WORKGROUP_BYTES: u32 = (HIST_WORDS * 4 + CHUNK * WG * 8 + 16 * 4 + 48 * 8) as u32;
/// Histogram words after the joint words, which are also the row's first counters: zeros, NaN,
/// +Inf, -Inf (`SPECIAL` in the shader). A discard word follows them in the private array.
const SPECIAL: usize = 4;
/// Integer counters per row: the SPECIAL words, then Hoyer tokens included and excluded.
const N_COUNTERS: usize = 6;
const N_FLOATS: usize = 12;
/// Words after `float_base` in the state: 10 float words, the two shifts, shifts_set, images
/// (lo, hi).
const STATE_TAIL: usize = 15;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct TapMeta {
    positions: u32,
    channels: u32,
    chunk_len: u32,
    chunks: u32,
    groups: u32,
    row_words: u32,
    copy_words: u32,
    neg_base: u32,
    hist_bins: u32,
    pos_bins: u32,
    pred_abs: u32,
    write_hoyer: u32,
    threshold: f32,
    hist_lo: f32,
    hist_hi: f32,
    hist_scale: f32,
    hist_width: f32,
    hist_lo_units: i32,
    pos_hi: f32,
    pos_scale: f32,
    pos_scale_hi: f32,
    pos_scale_lo: f32,
    log_t1: u32,
    log_t2: u32,
    log_t3: u32,
    opaque: u32,
    sqrt_c: f32,
    shift_word: u32,
    lin_pos_min: u32,
    lin_neg_max: u32,
    _pad0: u32,
    _pad1: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FoldMeta {
    groups: u32,
    row_words: u32,
    int_words: u32,
    float_base: u32,
    opaque: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct FoldChannelsMeta {
    channels: u32,
    chunks: u32,
    positions: u32,
    classes: u32,
}

/// Where `stats_tap` reads the tap from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapRead {
    /// The tap's storage buffer: `stats_tap` (vec4, C % 4 == 0) or `stats_tap_scalar`.
    Buffer,
    /// `stats_tap_texture`: a copy of the tap in a scratch texture, four channels per texel
    /// (C % 4 == 0). Chosen where the adapter's timing picked the matmul that reads textures
    /// (lavapipe from Mesa 22.3 fetches texels far faster than it loads from buffers).
    Texture,
}

impl TapRead {
    /// The read `TapStats::new` uses for C channels on `gpu`.
    pub fn preferred(gpu: &Gpu, c: usize) -> TapRead {
        if c.is_multiple_of(4) && gpu.choices().reads_textures() {
            TapRead::Texture
        } else {
            TapRead::Buffer
        }
    }
}

/// How the per-batch work and the buffers are laid out for one tap.
#[derive(Debug, Clone, Copy)]
struct Layout {
    chunks: usize,
    chunk_len: usize,
    /// Workgroups of `stats_tap`, each writing one partial row.
    groups: usize,
    /// Histogram words: the joint words of the three histograms (src/stats/joint.rs).
    copy_words: usize,
    /// Integer words of a row (histograms and counters), each folded into a u64.
    int_words: usize,
    row_words: usize,
    /// First float word of the state (after int_words u64 pairs).
    float_base: usize,
}

/// The GPU accumulators of one tap's statistics across batches.
pub struct TapStats {
    name: String,
    positions: usize,
    channels: usize,
    batch: usize,
    config: StatsConfig,
    joint: JointBins,
    layout: Layout,
    read: TapRead,
    edges: Tensor,
    state: Tensor,
    channel_state: Tensor,
    partial: Tensor,
    item_counts: Tensor,
    item_sums: Tensor,
    pooled: Tensor,
    hoyer: Option<Tensor>,
    batch_info: Tensor,
}

/// Workgroups for `stats_tap` when the caller does not choose: on a CPU adapter every
/// workgroup merges its histogram copies once per dispatch, so a few per core suffice
/// (GPU-NOTES.md: lavapipe runs one dispatch on all cores); a GPU wants many.
pub fn default_groups(gpu: &Gpu, items: usize) -> usize {
    let target = if gpu.is_cpu() {
        4 * std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        2048
    };
    target.min(items).max(1)
}

/// The workgroup count for `stats_tap`: `wanted`, raised until no workgroup runs more loop
/// iterations than `LOOP_BUDGET`, and checked against `stats_fold`'s budget (its loops grow
/// with the workgroup count).
#[allow(clippy::too_many_arguments)]
fn loop_safe_groups(
    op: &str,
    c: usize,
    batch: usize,
    chunks: usize,
    chunk_len: usize,
    copy_words: usize,
    wanted: usize,
) -> Result<usize> {
    let items = batch * chunks;
    // stats_tap, per invocation: the moment shifts (first batch), zeroing and merging the
    // histograms, the final reductions; then per item: one iteration per channel block and
    // position, one per block, the Hoyer loop over the chunk.
    let fixed = 64 + c + 3 * (copy_words + SPECIAL + 1) + (N_COUNTERS + 1) * (WG + 1) + 16;
    let per_item = 1 + c.div_ceil(4 * WG) * (1 + chunk_len) + chunk_len + chunk_len.div_ceil(WG);
    if fixed + per_item > LOOP_BUDGET {
        return Err(Error::shape(
            op,
            format!(
                "{c} channels are more than the statistics kernel can walk in one invocation on \
                 software adapters (about {} at most)",
                4 * WG * (LOOP_BUDGET / (2 + CHUNK))
            ),
        ));
    }
    let per_group = (LOOP_BUDGET - fixed) / per_item;
    let groups = wanted.max(items.div_ceil(per_group)).clamp(1, items);
    // stats_fold: `groups` iterations per invocation.
    let fold = groups + 16;
    // stats_fold_channels: `chunks` iterations.
    if fold > LOOP_BUDGET || chunks + 16 > LOOP_BUDGET {
        return Err(Error::shape(
            op,
            format!(
                "a batch of {batch} images of {} positions x {c} channels needs {groups} \
                 statistics workgroups, more than one fold can take: use a smaller --batch",
                chunks * chunk_len
            ),
        ));
    }
    Ok(groups)
}

impl TapStats {
    /// Accumulators for `tap` ([B, P, C] with B = `batch`), zeroed.
    pub fn new(gpu: &Gpu, tap: &TapInfo, batch: usize, config: &StatsConfig) -> Result<TapStats> {
        let chunks = tap.positions.div_ceil(CHUNK).max(1);
        Self::with_groups(gpu, tap, batch, config, default_groups(gpu, batch * chunks))
    }

    /// `new` with the number of `stats_tap` workgroups chosen (benchmarks, tests).
    pub fn with_groups(
        gpu: &Gpu,
        tap: &TapInfo,
        batch: usize,
        config: &StatsConfig,
        groups: usize,
    ) -> Result<TapStats> {
        let read = TapRead::preferred(gpu, tap.channels);
        Self::with_read(gpu, tap, batch, config, groups, read)
    }

    /// `with_groups` with the tap's read chosen (tests); `TapRead::Texture` needs C % 4 == 0.
    pub fn with_read(
        gpu: &Gpu,
        tap: &TapInfo,
        batch: usize,
        config: &StatsConfig,
        groups: usize,
        read: TapRead,
    ) -> Result<TapStats> {
        config.validate()?;
        let op = format!("stats of tap '{}'", tap.name);
        let (p, c) = (tap.positions, tap.channels);
        if batch == 0 || p == 0 || c == 0 {
            return Err(Error::shape(&op, format!("empty tap [{batch}, {p}, {c}]")));
        }
        if read == TapRead::Texture && !c.is_multiple_of(4) {
            return Err(Error::shape(
                &op,
                format!("{c} channels cannot be read as four per texel"),
            ));
        }
        // Kernels index with u32, and every per-batch counter is a u32: a batch must hold
        // fewer than 2^32 entries. (A binding of f32 is below 2^32 bytes anyway.)
        let entries = batch as u64 * p as u64 * c as u64;
        if entries >= 1 << 32 {
            return Err(Error::shape(
                &op,
                format!(
                    "a batch of [{batch}, {p}, {c}] has {entries} entries; the statistics kernels \
                     count up to 2^32 per batch: use a smaller --batch"
                ),
            ));
        }
        let need = TAP_WORKGROUP_BYTES;
        let have = gpu.limits.max_compute_workgroup_storage_size;
        if have < need {
            return Err(Error::Limit {
                what: "the statistics kernel's workgroup memory (bytes)".into(),
                needed: need as u64,
                limit: have as u64,
                adapter: gpu.info.name.clone(),
                advice: "this adapter cannot run the statistics pass".into(),
            });
        }
        let chunks = p.div_ceil(CHUNK);
        let chunk_len = p.div_ceil(chunks);
        let hb = config.hist.bins;
        let pb = config.hist_pos.bins;
        let joint = JointBins::new(&config.hist, &config.hist_pos);
        let copy_words = joint.words();
        // The special words and a discard word follow the joint words.
        if copy_words + SPECIAL + 1 > HIST_WORDS {
            return Err(Error::Usage(format!(
                "--hist with {hb} bins and --hist-pos with {pb} bins need {} histogram words per \
                 invocation; at most {HIST_WORDS} fit: use at most {} bins in the two together",
                copy_words + SPECIAL + 1,
                HIST_WORDS - SPECIAL - 1 - (2 * LOG_WORDS + 1)
            )));
        }
        let groups = loop_safe_groups(&op, c, batch, chunks, chunk_len, copy_words, groups)?;
        let int_words = copy_words + N_COUNTERS;
        let row_words = int_words + N_FLOATS;
        let float_base = 2 * int_words;
        let layout = Layout {
            chunks,
            chunk_len,
            groups,
            copy_words,
            int_words,
            row_words,
            float_base,
        };
        let k = config.classes;
        let label = |what: &str| format!("{} {what}", tap.name);

        let mut edges: Vec<f32> = config.hist.gpu_edges();
        edges.extend(config.hist_pos.gpu_edges());
        let edges = gpu.upload(&label("histogram edges"), &[edges.len()], &edges)?;

        let state_words = float_base + STATE_TAIL;
        let mut state_init = vec![0u32; state_words];
        state_init[float_base + 4] = f32::INFINITY.to_bits();
        state_init[float_base + 5] = f32::NEG_INFINITY.to_bits();
        let state = gpu.upload(&label("stats state"), &[state_words], &state_init)?;
        let channel_state = gpu.zeros(&label("channel state"), &[2 * (c * (2 + k) + k)])?;
        let partial = gpu.zeros(&label("stats partials"), &[groups, row_words])?;
        let item_counts = gpu.zeros(&label("item counts"), &[batch * chunks, c])?;
        let item_sums = gpu.zeros(&label("item sums"), &[batch * chunks, c])?;
        let pooled = gpu.zeros(&label("pooled"), &[batch, c])?;
        let hoyer = if config.hoyer_tokens {
            Some(gpu.zeros(&label("hoyer"), &[batch, p])?)
        } else {
            None
        };
        let batch_info = gpu.zeros(&label("batch info"), &[4 + batch])?;
        Ok(TapStats {
            name: tap.name.clone(),
            positions: p,
            channels: c,
            batch,
            config: config.clone(),
            joint,
            layout,
            read,
            edges,
            state,
            channel_state,
            partial,
            item_counts,
            item_sums,
            pooled,
            hoyer,
            batch_info,
        })
    }

    /// The kernel that reads the tap: `stats_tap` (vec4), `stats_tap_texture` or
    /// `stats_tap_scalar`.
    pub fn kernel(&self) -> &'static str {
        match self.read {
            TapRead::Texture => "stats_tap_texture",
            TapRead::Buffer => self.buffer_kernel(),
        }
    }

    /// The kernel that reads the tap from its buffer: `stats_tap` (vec4, C % 4 == 0) or
    /// `stats_tap_scalar`; also where a texture read falls back over the texture limits.
    fn buffer_kernel(&self) -> &'static str {
        if self.channels.is_multiple_of(4) {
            "stats_tap"
        } else {
            "stats_tap_scalar"
        }
    }

    pub fn groups(&self) -> usize {
        self.layout.groups
    }

    /// Pooled features of the last batch, [B, C] f32 (rows >= n_valid are stale): copy them
    /// out in the same submission, after the steps.
    pub fn pooled(&self) -> &Tensor {
        &self.pooled
    }

    /// Per-token Hoyer sparsity of the last batch, [B, P] f32 (NaN for excluded tokens), when
    /// `StatsConfig::hoyer_tokens` is set.
    pub fn hoyer_tokens(&self) -> Option<&Tensor> {
        self.hoyer.as_ref()
    }

    /// Set the valid image count and labels of the next batch. Queue-ordered: it takes effect
    /// for the next submission, after the work already submitted. `labels` (one per valid
    /// image, each below `classes`) are required exactly when `classes > 0`.
    pub fn set_batch(&self, gpu: &Gpu, n_valid: usize, labels: Option<&[u32]>) -> Result<()> {
        let op = format!("stats of tap '{}'", self.name);
        if n_valid == 0 || n_valid > self.batch {
            return Err(Error::shape(
                &op,
                format!("{n_valid} valid images in a batch of {}", self.batch),
            ));
        }
        let k = self.config.classes;
        let mut info = vec![0u32; 4 + n_valid];
        info[0] = n_valid as u32;
        match (labels, k) {
            (None, 0) => {}
            (Some(l), k) if k > 0 => {
                if l.len() != n_valid {
                    return Err(Error::shape(
                        &op,
                        format!("{} labels for {n_valid} images", l.len()),
                    ));
                }
                if let Some((i, &bad)) = l.iter().enumerate().find(|(_, v)| **v as usize >= k) {
                    return Err(Error::shape(
                        &op,
                        format!("label {bad} of image {i} is not below the {k} classes"),
                    ));
                }
                info[4..].copy_from_slice(l);
            }
            (Some(_), _) => {
                return Err(Error::shape(
                    &op,
                    "labels given, but the statistics were set up without classes",
                ));
            }
            (None, _) => {
                return Err(Error::shape(
                    &op,
                    format!("{k} classes were set up, but the batch has no labels"),
                ));
            }
        }
        gpu.write(&self.batch_info, &info);
        Ok(())
    }

    /// The copy of this batch's tap into a scratch texture for `stats_tap_texture`, or `None`
    /// (buffer reads, or a tap over the adapter's texture limits).
    fn texture_copy(&self, gpu: &Gpu, tap: &Tensor) -> Option<TextureCopy> {
        if self.read != TapRead::Texture {
            return None;
        }
        let len = self.batch * self.positions * self.channels;
        let format = wgpu::TextureFormat::Rgba32Float;
        TextureCopy::to_scratch(gpu, TAP_TEXTURE, tap, len, format)
    }

    /// The dispatches of one batch, valid for every batch: they read the valid image count and
    /// labels that `set_batch` wrote, so a plan can record them once at the tap. `tap` holds
    /// the tap's [B, P, C] value when the steps run.
    pub fn record(&self, gpu: &Gpu, tap: &Tensor) -> Result<Vec<Step>> {
        let op = format!("stats of tap '{}'", self.name);
        let (p, c, l) = (self.positions, self.channels, &self.layout);
        check_len(&op, "tap", tap, self.batch * p * c)?;
        let cfg = &self.config;
        let hist_edges = cfg.hist.gpu_edges();
        let pos_edges = cfg.hist_pos.gpu_edges();
        let [t1, t2, t3] = log_mantissa_thresholds();
        let pow2 = cfg.hist.power_of_two_units();
        let pos_split = cfg.hist_pos.exact_scale();
        let (pos_scale_hi, pos_scale_lo) = pos_split.map_or((0.0, 0.0), PosScale::terms);
        let constants = [
            ("HIST_TABLE", pow2.is_none() as u8 as f64),
            ("POS_TABLE", pos_split.is_none() as u8 as f64),
            (
                "POS_TWO_POWERS",
                matches!(pos_split, Some(PosScale::TwoPowers(..))) as u8 as f64,
            ),
            (
                "HIST_EXACT",
                pow2.is_some_and(|(_, w)| w <= 1.0) as u8 as f64,
            ),
        ];
        let meta = TapMeta {
            positions: p as u32,
            channels: c as u32,
            chunk_len: l.chunk_len as u32,
            chunks: l.chunks as u32,
            groups: l.groups as u32,
            row_words: l.row_words as u32,
            copy_words: l.copy_words as u32,
            neg_base: self.joint.neg_base as u32,
            hist_bins: cfg.hist.bins as u32,
            pos_bins: cfg.hist_pos.bins as u32,
            pred_abs: cfg.predicate.uses_abs() as u32,
            write_hoyer: self.hoyer.is_some() as u32,
            threshold: cfg.predicate.threshold(),
            hist_lo: hist_edges[0],
            hist_hi: hist_edges[cfg.hist.bins],
            hist_scale: pow2.map_or(cfg.hist.scale(), |(_, w)| 1.0 / w),
            hist_width: pow2.map_or(0.0, |(_, w)| w),
            hist_lo_units: pow2.map_or(0, |(u, _)| u),
            pos_hi: pos_edges[cfg.hist_pos.bins],
            pos_scale: cfg.hist_pos.scale(),
            pos_scale_hi,
            pos_scale_lo,
            log_t1: t1,
            log_t2: t2,
            log_t3: t3,
            opaque: 0,
            sqrt_c: (c as f32).sqrt(),
            shift_word: (l.float_base + 10) as u32,
            lin_pos_min: self.joint.lin_pos_min as u32,
            lin_neg_max: self.joint.lin_neg_max as u32,
            _pad0: 0,
            _pad1: 0,
        };
        let dummy = gpu.dummy();
        let hoyer = self.hoyer.as_ref().unwrap_or(&dummy);
        let rest = [
            &self.batch_info,
            &self.edges,
            &self.state,
            &self.partial,
            &self.item_counts,
            &self.item_sums,
            hoyer,
        ];
        let tap_pass = match self.texture_copy(gpu, tap) {
            Some(copy) => Dispatch::with_texture_copy(
                gpu,
                "stats_tap_texture",
                &constants,
                &meta,
                copy,
                0,
                &rest,
                grid(gpu, l.groups),
            )?,
            None => {
                // Buffer reads, also where a texture read is over the adapter's texture
                // limits.
                let mut tensors = vec![tap];
                tensors.extend(rest);
                Dispatch::new(
                    gpu,
                    self.buffer_kernel(),
                    &constants,
                    &meta,
                    &tensors,
                    grid(gpu, l.groups),
                )?
            }
        };
        let fold = Dispatch::new(
            gpu,
            "stats_fold",
            &[],
            &FoldMeta {
                groups: l.groups as u32,
                row_words: l.row_words as u32,
                int_words: l.int_words as u32,
                float_base: l.float_base as u32,
                opaque: 0,
                _pad0: 0,
                _pad1: 0,
                _pad2: 0,
            },
            &[&self.partial, &self.batch_info, &self.state],
            grid(gpu, (l.int_words + 7).div_ceil(64)),
        )?;
        let fold_channels = Dispatch::new(
            gpu,
            "stats_fold_channels",
            &[],
            &FoldChannelsMeta {
                channels: c as u32,
                chunks: l.chunks as u32,
                positions: p as u32,
                classes: cfg.classes as u32,
            },
            &[
                &self.batch_info,
                &self.item_counts,
                &self.item_sums,
                &self.channel_state,
                &self.pooled,
            ],
            grid(gpu, c.div_ceil(64) * self.batch),
        )?;
        Ok(vec![
            Step::Kernel(tap_pass),
            Step::Kernel(fold),
            Step::Kernel(fold_channels),
        ])
    }

    /// `set_batch` then `record`: the steps of one batch of `n_valid` images (the first
    /// `n_valid` rows of `tap`; padding rows never count), with one label per valid image
    /// when classes were set up.
    pub fn steps(
        &self,
        gpu: &Gpu,
        tap: &Tensor,
        n_valid: usize,
        labels: Option<&[u32]>,
    ) -> Result<Vec<Step>> {
        self.set_batch(gpu, n_valid, labels)?;
        self.record(gpu, tap)
    }

    /// Read the totals back (once, after the last batch has been submitted) and finalise them.
    pub fn finish(&self, gpu: &Gpu) -> Result<TapTotals> {
        let cfg = &self.config;
        Ok(TapTotals::finalise(
            self.raw(gpu)?,
            self.positions,
            self.channels,
            cfg.predicate,
            &cfg.hist,
            &cfg.hist_pos,
        ))
    }

    /// The counts and sums behind `finish`, before finalisation: what shards keep so that
    /// `RawCounts::merge` gives the totals of all their images.
    pub fn raw(&self, gpu: &Gpu) -> Result<RawCounts> {
        let state: Vec<u32> = gpu.read(&self.state)?;
        let chan: Vec<u32> = gpu.read(&self.channel_state)?;
        let (c, l, cfg) = (self.channels, &self.layout, &self.config);
        let u64_at = |v: &[u32], i: usize| v[i] as u64 | (v[i + 1] as u64) << 32;
        let int = |w: usize| u64_at(&state, 2 * w);
        let ints: Vec<u64> = (0..l.int_words).map(int).collect();
        let f = l.float_base;
        let float = |i: usize| f32::from_bits(state[f + i]) as f64;
        let pair = |i: usize| float(i) + float(i + 1);

        let hb = cfg.hist.bins;
        let counters = &ints[l.copy_words..l.copy_words + N_COUNTERS];
        // Infinities are counted apart on the GPU: give them their joint words back.
        let mut joint_counts = ints[..l.copy_words].to_vec();
        let (pinf_word, ninf_word) = self.joint.infinity_words();
        joint_counts[pinf_word] += counters[2];
        joint_counts[ninf_word] += counters[3];
        let split = self.joint.split(&joint_counts);
        let mut hist = split.hist;
        let (zeros, nans, pinf, ninf, htok, hexcl) = (
            counters[0],
            counters[1],
            counters[2],
            counters[3],
            counters[4],
            counters[5],
        );
        // Zeros skip the GPU histograms (they are counted in registers): put them in their bin.
        match cfg.hist.place(0.0, &cfg.hist.edges()) {
            Some(Bin::Under) => hist[0] += zeros,
            Some(Bin::In(i)) => hist[1 + i] += zeros,
            Some(Bin::Over) => hist[hb + 1] += zeros,
            None => unreachable!("0 is not NaN"),
        }
        let images = u64_at(&state, f + 13);
        let entries = images * self.positions as u64 * c as u64;
        let k = cfg.classes;
        let raw = RawCounts {
            images,
            firing_count: (0..c).map(|i| u64_at(&chan, 2 * i)).collect(),
            active_images: (0..c).map(|i| u64_at(&chan, 2 * c + 2 * i)).collect(),
            class_images: (0..k)
                .map(|i| u64_at(&chan, 4 * c + 2 * k * c + 2 * i))
                .collect(),
            active_images_by_class: (0..k * c).map(|i| u64_at(&chan, 4 * c + 2 * i)).collect(),
            zero_entries: zeros,
            nan_count: nans,
            posinf_count: pinf,
            neginf_count: ninf,
            hist,
            hist_pos: split.hist_pos,
            loghist_pos: split.loghist_pos,
            loghist_neg: split.loghist_neg,
            min: float(4),
            max: float(5),
            moments: Moments {
                count: entries - nans - pinf - ninf,
                shift: float(10),
                sum_dev: pair(0),
                sum_dev2: pair(2),
            },
            hoyer_moments: Moments {
                count: htok,
                shift: float(11),
                sum_dev: pair(6),
                sum_dev2: pair(8),
            },
            hoyer_excluded: hexcl,
        };
        Ok(raw)
    }
}
