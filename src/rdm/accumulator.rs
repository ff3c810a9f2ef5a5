//! `GramAccumulator`: the streaming GPU state behind the flat-feature RDMs of one tap.
//!
//! Per batch, inside the forward plan and without a round trip to the CPU:
//! - Exact mode: `rdm_rowstats` computes each image's shift a_i (close to its mean) and
//!   t_i = sum(x_i - a_i), u_i = |x_i - a_i|^2; `rdm_store` appends the flat rows [n, D] to a
//!   row store on the GPU.
//! - Sketch mode: `rdm_sketch` computes the same a_i, t_i, u_i while it projects x_i - a_i to
//!   k dimensions with a seeded sparse sign matrix generated inside the kernel (`sketch.rs`),
//!   reading each row once; `rdm_store` appends those k-vectors.
//!
//! After the last batch, [`GramAccumulator::source`] hands out the inner products of the stored
//! rows a block of rows at a time ([`FlatSource`], a `GramSource`): `rdm_gram_*` computes a
//! block's rows against every stored row, in parts over ranges of the width (split K), and the
//! parts are added in f64 on the CPU. A block holds a bounded number of rows, so the GPU and the
//! CPU hold the store and O(N) sums, never an N x N matrix: RDMs of any N stream to disk.
//! Each entry (i, j) is computed in the block of row i and again in the block of row j, by the
//! same dot product in the same order, so both agree bit for bit and the RDMs are exactly
//! symmetric (twice the arithmetic of a triangle, spent once per run after the pass).
//!
//! The batch's position (first image n0, valid rows nb) lives in a small `cursor` buffer that
//! `begin_batch` writes before the plan is submitted, so the recorded steps are the same for
//! every batch and can join a plan recorded once (a partial last batch only lowers nb).
//! Stores larger than the adapter's binding limit (128 MiB on many) are split by rows, one
//! buffer and one dispatch per part.

use std::borrow::Cow;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu, LOOP_BUDGET, Plan, Step, TAP_TEXTURE, Tensor, TextureCopy, grid};
use crate::rdm::gram::{Gram, GramSource, GramStats};
use crate::rdm::sketch::expected_error;

/// How the flat features of one tap reach the Gram matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum FlatMode {
    /// Every image's flat vector kept on the GPU; inner products accurate to ~1e-6 relative.
    Exact,
    /// A seeded k-dimensional random projection per image; inner products of unit vectors
    /// carry an error of standard deviation at most sqrt(2/k).
    Sketch { dim: usize, seed: u64 },
}

/// The kernel that computes the inner products (`rdm_gram_tiled` or `rdm_gram_subgroup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GramVariant {
    /// Workgroup-memory tiles: real GPUs, and any width.
    Tiled,
    /// One 8-lane subgroup per workgroup with broadcasts: CPU adapters; width % 4 == 0.
    Subgroup,
}

impl GramVariant {
    pub fn kernel(self) -> &'static str {
        match self {
            GramVariant::Tiled => "rdm_gram_tiled",
            GramVariant::Subgroup => "rdm_gram_subgroup",
        }
    }

    /// Rows x stored rows that one workgroup computes.
    fn tile(self) -> (usize, usize) {
        match self {
            GramVariant::Tiled => (16, 64),
            GramVariant::Subgroup => (8, 32),
        }
    }

    /// Floats per element of the kernel's `width` (vec4 loads in the subgroup kernel).
    fn unit(self) -> usize {
        match self {
            GramVariant::Tiled => 1,
            GramVariant::Subgroup => 4,
        }
    }

    /// Why this variant cannot run on `gpu` for rows of `width` floats, or `None`.
    pub fn unsupported(self, gpu: &Gpu, width: usize) -> Option<String> {
        match self {
            GramVariant::Tiled => None,
            GramVariant::Subgroup => {
                let (min, max) = (gpu.info.subgroup_min_size, gpu.info.subgroup_max_size);
                if !gpu.has_subgroups() {
                    Some(format!("adapter '{}' has no subgroups", gpu.info.name))
                } else if (min, max) != (8, 8) {
                    Some(format!(
                        "adapter '{}' has subgroup sizes {min}..{max}, the kernel needs exactly 8",
                        gpu.info.name
                    ))
                } else if !width.is_multiple_of(4) {
                    Some(format!(
                        "width {width} is not a multiple of 4 (rows read as vec4)"
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// The subgroup kernel on CPU adapters that can run it (GPU-NOTES.md), else the tiled one.
    pub fn preferred(gpu: &Gpu, width: usize) -> GramVariant {
        if gpu.is_cpu() && GramVariant::Subgroup.unsupported(gpu, width).is_none() {
            GramVariant::Subgroup
        } else {
            GramVariant::Tiled
        }
    }
}

/// Rows of the store that one buffer holds.
#[derive(Debug, Clone)]
struct Chunk {
    tensor: Tensor,
    row0: usize,
    rows: usize,
}

/// Columns of a row one rdm_store workgroup copies (its WG * SPAN).
const STORE_COLUMNS: usize = 64 * 64;

/// Bytes of each of a block's two buffers (its store rows and its inner products), at most.
const BLOCK_BYTES: u64 = 4 << 20;

// Every kernel here keeps each invocation within gpu::LOOP_BUDGET loop iterations: the Gram
// kernels by splitting the width (split K), the others by refusing larger shapes.

/// Floats of the width one Gram workgroup covers: the subgroup kernel runs one iteration per
/// vec4 plus 33 per run of 128 (32,768 vec4s: ~41,000 iterations), the tiled one ~43 per tile
/// of 32 floats (1,024 tiles: ~44,000).
fn split_floats(variant: GramVariant) -> usize {
    match variant {
        GramVariant::Subgroup => 4 * 32_768,
        GramVariant::Tiled => 32_768,
    }
}

/// Bucket quads each invocation of rdm_sketch owns per pass over the row (its pipeline constant
/// QPL): the smallest of 8, 16 and 32 that covers the k / 4 quads with its 8 invocations, else
/// 32 and several passes.
fn sketch_quads_per_lane(k: usize) -> usize {
    match (k / 4).div_ceil(8) {
        0..=8 => 8,
        9..=16 => 16,
        _ => 32,
    }
}

/// Loop iterations of one rdm_sketch invocation for rows of `dim` features and a k-dimensional
/// sketch (see rdm_sketch_common.wgsl): per pass one for the pass, one per block, QPL + 1 per
/// run of 64 blocks and 2 QPL to clear and store the quads; then the shift's 32 samples and
/// the two reductions' 3 each, rounded up to 64.
fn sketch_iterations(dim: usize, k: usize) -> usize {
    let qpl = sketch_quads_per_lane(k);
    let passes = (k / 4).div_ceil(8 * qpl);
    let blocks = dim.div_ceil(k);
    passes * (1 + blocks + blocks.div_ceil(64) * (qpl + 1) + 2 * qpl) + 64
}

/// Split-K parts of a row of `width` floats.
fn splits(variant: GramVariant, width: usize) -> usize {
    width.div_ceil(split_floats(variant)).max(1)
}

/// Streaming Gram matrix of one tap's flat features on the GPU. See the module comment.
pub struct GramAccumulator {
    mode: FlatMode,
    variant: GramVariant,
    dim: usize,
    capacity: usize,
    batch: usize,
    /// Store rows before the first image: 1 in sketch mode (row 0 holds S 1).
    row_offset: usize,
    /// The store's row width: D (exact) or k (sketch).
    width: usize,
    count: usize,
    /// The largest buffer to allocate: the adapter's binding limit, or lower in tests.
    max_buffer: u64,
    cursor: Tensor,
    stats: Tensor,
    store: Vec<Chunk>,
    sketch_scratch: Option<Tensor>,
    /// `rdm_sketch_texture` reads the batch from a texture copy (D % 4 == 0): where the
    /// adapter's timing picked the matmul that reads textures (`set_texture_reads`).
    texture_reads: bool,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowStatsParams {
    d: u32,
    rows: u32,
    capacity: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StoreParams {
    width: u32,
    rows: u32,
    row0: u32,
    dst_rows: u32,
    row_offset: u32,
    _pad: [u32; 3],
}

/// The parameters of `rdm_gram_*` (see the kernels for their meaning).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GramParams {
    width: u32,
    rows: u32,
    a_first: u32,
    a_image0: u32,
    b_row0: u32,
    b_rows: u32,
    j0: u32,
    j1: u32,
    stride: u32,
    use_shift: u32,
    row_offset: u32,
    capacity: u32,
    split_len: u32,
    splits: u32,
    split_stride: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SketchParams {
    d: u32,
    k: u32,
    rows: u32,
    seed_lo: u32,
    seed_hi: u32,
    ones: u32,
    capacity: u32,
    _pad: u32,
}

/// The largest buffer the accumulator binds whole.
fn binding_limit(gpu: &Gpu) -> u64 {
    gpu.limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size)
}

/// Row ranges of a store of `rows` rows of `width` f32 that fit `limit` bytes per buffer.
fn row_chunks(rows: usize, width: usize, limit: u64) -> Option<Vec<(usize, usize)>> {
    let per = (limit / (width as u64 * 4)) as usize;
    if per == 0 {
        return None;
    }
    Some(
        (0..rows)
            .step_by(per)
            .map(|r0| (r0, per.min(rows - r0)))
            .collect(),
    )
}

impl FlatMode {
    /// The store's row width and the rows before the first image.
    fn layout(self, dim: usize) -> (usize, usize) {
        match self {
            FlatMode::Exact => (dim, 0),
            FlatMode::Sketch { dim: k, .. } => (k, 1),
        }
    }
}

impl GramAccumulator {
    /// GPU bytes held through the pass for `capacity` images of `dim` flat features with
    /// batches of `batch` (the buffers of one block, at most 2 x `BLOCK_BYTES`, exist only
    /// while one tap's RDMs are finalised).
    pub fn bytes(mode: FlatMode, dim: usize, capacity: usize, batch: usize) -> u64 {
        let (width, off) = mode.layout(dim);
        let rows = (capacity + off) as u64;
        let mut b = rows * width as u64 * 4 // store
            + capacity as u64 * 16; // row statistics
        if let FlatMode::Sketch { dim: k, .. } = mode {
            b += batch as u64 * k as u64 * 4;
        }
        b
    }

    /// Allocate the state for up to `capacity` images of `dim` features arriving in batches of
    /// at most `batch` rows, with the Gram kernel preferred on this adapter.
    pub fn new(
        gpu: &Gpu,
        mode: FlatMode,
        dim: usize,
        capacity: usize,
        batch: usize,
    ) -> Result<GramAccumulator> {
        let (width, _) = mode.layout(dim);
        Self::with_variant(
            gpu,
            mode,
            GramVariant::preferred(gpu, width),
            dim,
            capacity,
            batch,
        )
    }

    /// `new` with the Gram kernel given (tests run both on one adapter).
    pub fn with_variant(
        gpu: &Gpu,
        mode: FlatMode,
        variant: GramVariant,
        dim: usize,
        capacity: usize,
        batch: usize,
    ) -> Result<GramAccumulator> {
        Self::with_options(gpu, mode, variant, dim, capacity, batch, binding_limit(gpu))
    }

    /// `with_variant` with buffers split at `max_buffer` bytes instead of the adapter's binding
    /// limit (tests split a small store over many buffers this way).
    pub fn with_options(
        gpu: &Gpu,
        mode: FlatMode,
        variant: GramVariant,
        dim: usize,
        capacity: usize,
        batch: usize,
        max_buffer: u64,
    ) -> Result<GramAccumulator> {
        const OP: &str = "rdm accumulator";
        let (width, row_offset) = mode.layout(dim);
        if dim == 0 || capacity == 0 || batch == 0 {
            return Err(Error::shape(
                OP,
                format!("needs positive sizes, got D = {dim}, capacity {capacity}, batch {batch}"),
            ));
        }
        if let FlatMode::Sketch { dim: k, .. } = mode
            && (k == 0 || !k.is_multiple_of(4) || k / 4 > 0xFFFF)
        {
            // Multiples of 4 keep sketch rows readable as vec4 by the subgroup Gram kernel and
            // let rdm_sketch read features by quads; its bucket offsets are 16-bit fractions
            // of k / 4.
            return Err(Error::Usage(format!(
                "sketch dimension {k} must be a positive multiple of 4 of at most 262140"
            )));
        }
        if let Some(why) = variant.unsupported(gpu, width) {
            return Err(Error::shape(
                OP,
                format!("kernel {} cannot run here: {why}", variant.kernel()),
            ));
        }
        let rows = capacity + row_offset;
        // Single buffers (the batch, a block's inner products) are checked against the
        // adapter's limit; the store is split at `limit`.
        let adapter_limit = binding_limit(gpu);
        let limit = max_buffer.min(adapter_limit);
        let too_big = |what: &str, needed: u64| Error::Limit {
            what: format!("{OP}: {what}"),
            needed,
            limit: adapter_limit,
            adapter: gpu.info.name.clone(),
            advice: "use a smaller --batch, fewer images or a sketch (--rdm-budget)".into(),
        };
        let input_len = batch as u64 * dim as u64;
        if input_len * 4 > adapter_limit || input_len > u32::MAX as u64 {
            return Err(too_big("one batch of flat features", input_len * 4));
        }
        let parts = splits(variant, width);
        let scratch_bytes = (parts * rows) as u64 * 4;
        if scratch_bytes > adapter_limit {
            return Err(too_big(
                "the inner products of one image with every other",
                scratch_bytes,
            ));
        }
        // Loop iterations per invocation of the fixed-width kernels (see LOOP_BUDGET).
        if dim.div_ceil(1024) + 16 > LOOP_BUDGET {
            return Err(too_big(
                "flat features per image (rdm_rowstats loop budget)",
                dim as u64,
            ));
        }
        if let FlatMode::Sketch { dim: k, .. } = mode
            && sketch_iterations(dim, k) > LOOP_BUDGET
        {
            return Err(Error::Usage(format!(
                "{OP}: flat features of {dim} values per image take rdm_sketch {} loop \
                 iterations per invocation, over the {LOOP_BUDGET} that every adapter runs \
                 (llvmpipe ends longer loops silently); tap a narrower layer or a smaller input",
                sketch_iterations(dim, k)
            )));
        }
        let max_wg = gpu.limits.max_compute_workgroups_per_dimension as usize;
        if width.div_ceil(STORE_COLUMNS) > max_wg || batch > max_wg {
            return Err(too_big(
                "the copy grid",
                width.div_ceil(STORE_COLUMNS).max(batch) as u64,
            ));
        }
        let store_ranges = row_chunks(rows, width, limit)
            .ok_or_else(|| too_big("one image's flat row", width as u64 * 4))?;

        let label = |s: &str| format!("rdm {s}");
        let mut store = Vec::new();
        for (i, (row0, n)) in store_ranges.into_iter().enumerate() {
            let tensor = gpu.zeros(&label(&format!("store {i}")), &[n, width])?;
            store.push(Chunk {
                tensor,
                row0,
                rows: n,
            });
        }
        let cursor = gpu.upload::<u32>(&label("cursor"), &[4], &[0, 0, 0, 0])?;
        let stats = gpu.zeros(&label("row stats"), &[capacity, 4])?;
        let sketch_scratch = match mode {
            FlatMode::Exact => None,
            FlatMode::Sketch { dim: k, .. } => Some(gpu.zeros(&label("sketch rows"), &[batch, k])?),
        };
        let acc = GramAccumulator {
            mode,
            variant,
            dim,
            capacity,
            batch,
            row_offset,
            width,
            count: 0,
            max_buffer: limit,
            cursor,
            stats,
            store,
            sketch_scratch,
            texture_reads: gpu.choices().reads_textures(),
        };
        if let FlatMode::Sketch { .. } = mode {
            acc.init_sketch_ones(gpu)?;
        }
        Ok(acc)
    }

    /// Store row 0 of a sketch store: S 1, the projection of the all-ones vector.
    fn init_sketch_ones(&self, gpu: &Gpu) -> Result<()> {
        let scratch = self.sketch_scratch.as_ref().expect("sketch mode");
        let mut plan = Plan::default();
        plan.push(self.sketch_dispatch(gpu, &gpu.dummy(), true)?);
        plan.steps.push(Step::Copy {
            src: scratch.view(&[self.width]),
            dst: self.store[0].tensor.buffer.clone(),
            dst_offset: 0,
        });
        plan.run(gpu)
    }

    fn sketch_dispatch(&self, gpu: &Gpu, input: &Tensor, ones: bool) -> Result<Dispatch> {
        let FlatMode::Sketch { dim: k, seed } = self.mode else {
            unreachable!("sketch dispatch in exact mode")
        };
        let rows = if ones { 1 } else { self.batch };
        let params = SketchParams {
            d: self.dim as u32,
            k: k as u32,
            rows: rows as u32,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            ones: ones as u32,
            capacity: self.capacity as u32,
            _pad: 0,
        };
        let out = self.sketch_scratch.as_ref().expect("sketch mode");
        let constants = [("QPL", sketch_quads_per_lane(k) as f64)];
        if !ones
            && self.texture_reads
            && let Some(copy) = self.texture_copy(gpu, input)
        {
            return Dispatch::with_texture_copy(
                gpu,
                "rdm_sketch_texture",
                &constants,
                &params,
                copy,
                0,
                &[&self.cursor, &self.stats, out],
                grid(gpu, rows),
            );
        }
        // The all-ones row reads no features: any input is bound, so the vec4 kernel serves.
        let kernel = if ones || self.dim.is_multiple_of(4) {
            "rdm_sketch"
        } else {
            "rdm_sketch_scalar"
        };
        Dispatch::new(
            gpu,
            kernel,
            &constants,
            &params,
            &[input, &self.cursor, &self.stats, out],
            grid(gpu, rows),
        )
    }

    /// The copy of a batch ([batch, D], D % 4 == 0) into a scratch texture for
    /// `rdm_sketch_texture`, or `None` (D % 4 != 0, or over the adapter's texture limits).
    fn texture_copy(&self, gpu: &Gpu, input: &Tensor) -> Option<TextureCopy> {
        if !self.dim.is_multiple_of(4) {
            return None;
        }
        let len = self.batch * self.dim;
        let format = wgpu::TextureFormat::Rgba32Float;
        TextureCopy::to_scratch(gpu, TAP_TEXTURE, input, len, format)
    }

    /// Read batches from a texture copy (`rdm_sketch_texture`) or not, whatever the adapter's
    /// timing chose (tests run both; D % 4 != 0 always reads the buffer). Takes effect for
    /// the steps recorded after it.
    pub fn set_texture_reads(&mut self, on: bool) {
        self.texture_reads = on;
    }

    pub fn mode(&self) -> FlatMode {
        self.mode
    }

    pub fn variant(&self) -> GramVariant {
        self.variant
    }

    /// Images accumulated so far (counting batches announced by `begin_batch`).
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bound on the standard deviation of the error of a correlation or cosine RDM entry
    /// (the inner product of two unit vectors): sqrt(2/k) in sketch mode; in exact mode the
    /// f32 summation's ~1e-6.
    pub fn expected_error(&self) -> f64 {
        match self.mode {
            FlatMode::Exact => 1e-6,
            FlatMode::Sketch { dim, .. } => expected_error(dim),
        }
    }

    /// The steps that fold one batch held in `input` ([batch, D] rows, e.g. a tap's
    /// [batch, P, C] activation) into the accumulator. They are the same for every batch, so
    /// they can be recorded once into a plan; `begin_batch` must precede each submission.
    pub fn steps(&self, gpu: &Gpu, input: &Tensor) -> Result<Vec<Step>> {
        const OP: &str = "rdm accumulator";
        if input.len() < self.batch * self.dim {
            return Err(Error::shape(
                OP,
                format!(
                    "input {:?} holds fewer than batch {} x D {} values",
                    input.shape, self.batch, self.dim
                ),
            ));
        }
        let mut steps = Vec::new();
        // The rows that go into the store and into the Gram products: the features themselves,
        // or their sketches. Both kernels also write the rows' statistics.
        let rows_src = match self.mode {
            FlatMode::Exact => {
                let rs = RowStatsParams {
                    d: self.dim as u32,
                    rows: self.batch as u32,
                    capacity: self.capacity as u32,
                    _pad: 0,
                };
                let kernel = if self.dim.is_multiple_of(4) {
                    "rdm_rowstats"
                } else {
                    "rdm_rowstats_scalar"
                };
                steps.push(Step::Kernel(Dispatch::new(
                    gpu,
                    kernel,
                    &[],
                    &rs,
                    &[input, &self.cursor, &self.stats],
                    grid(gpu, self.batch),
                )?));
                input.clone()
            }
            FlatMode::Sketch { .. } => {
                steps.push(Step::Kernel(self.sketch_dispatch(gpu, input, false)?));
                self.sketch_scratch.clone().expect("sketch mode")
            }
        };
        steps.extend(self.store_steps(gpu, &rows_src)?);
        Ok(steps)
    }

    /// The row store's width: D (exact) or k (sketch).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Steps that take rows already made (the `export_rows` of shards) instead of features:
    /// `rows` holds [batch, width] store rows, whose statistics `begin_given_batch` wrote.
    /// Fed the rows of every shard in order, the accumulator rebuilds the Gram a single run
    /// would have built: the same rows meet the same kernels.
    pub fn given_steps(&self, gpu: &Gpu, rows: &Tensor) -> Result<Vec<Step>> {
        if rows.len() < self.batch * self.width {
            return Err(Error::shape(
                "rdm accumulator",
                format!(
                    "rows {:?} hold fewer than batch {} x width {}",
                    rows.shape, self.batch, self.width
                ),
            ));
        }
        self.store_steps(gpu, rows)
    }

    /// `begin_batch` for `given_steps`: also writes the batch's row statistics ([n_valid, 4]).
    pub fn begin_given_batch(&mut self, gpu: &Gpu, n_valid: usize, stats: &[f32]) -> Result<()> {
        if stats.len() != 4 * n_valid {
            return Err(Error::shape(
                "rdm accumulator",
                format!("{} row statistics for {n_valid} rows", stats.len() / 4),
            ));
        }
        let first = self.count;
        self.begin_batch(gpu, n_valid)?;
        gpu.queue.write_buffer(
            &self.stats.buffer,
            (first * 16) as u64,
            bytemuck::cast_slice(stats),
        );
        Ok(())
    }

    /// The store rows of the images seen so far ([n, width]: features, or sketches) and their
    /// row statistics ([n, 4]), read back: what a shard keeps for the merged flat RDM.
    pub fn export_rows(&self, gpu: &Gpu) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = self.count;
        if n == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let stats = self.row_stats(gpu)?;
        let (first, end) = (self.row_offset, self.row_offset + n);
        let mut rows = Vec::with_capacity(n * self.width);
        for chunk in &self.store {
            let lo = first.max(chunk.row0);
            let hi = end.min(chunk.row0 + chunk.rows);
            if lo >= hi {
                continue;
            }
            let offset = ((lo - chunk.row0) * self.width * 4) as u64;
            let len = ((hi - lo) * self.width * 4) as u64;
            let bytes = gpu.read_bytes(&chunk.tensor.buffer, offset, len)?;
            rows.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
        }
        Ok((rows, stats))
    }

    /// Append the batch's rows to the store.
    fn store_steps(&self, gpu: &Gpu, rows_src: &Tensor) -> Result<Vec<Step>> {
        let wgs_w = self.width.div_ceil(STORE_COLUMNS) as u32;
        self.store
            .iter()
            .map(|chunk| {
                let p = StoreParams {
                    width: self.width as u32,
                    rows: self.batch as u32,
                    row0: chunk.row0 as u32,
                    dst_rows: chunk.rows as u32,
                    row_offset: self.row_offset as u32,
                    _pad: [0; 3],
                };
                Ok(Step::Kernel(Dispatch::new(
                    gpu,
                    "rdm_store",
                    &[],
                    &p,
                    &[rows_src, &self.cursor, &chunk.tensor],
                    [wgs_w, self.batch as u32, 1],
                )?))
            })
            .collect()
    }

    /// Announce the next batch of `n_valid` images (its first rows; the rest of the batch
    /// buffer is ignored). Call once per batch before submitting the plan with `steps`.
    pub fn begin_batch(&mut self, gpu: &Gpu, n_valid: usize) -> Result<()> {
        if n_valid > self.batch {
            return Err(Error::shape(
                "rdm accumulator",
                format!("{n_valid} images in a batch of {}", self.batch),
            ));
        }
        if self.count + n_valid > self.capacity {
            return Err(Error::Usage(format!(
                "the flat RDM was sized for {} images, {} arrived",
                self.capacity,
                self.count + n_valid
            )));
        }
        let cursor = [self.count as u32, n_valid as u32, 0, 0];
        gpu.write(&self.cursor, &cursor);
        self.count += n_valid;
        Ok(())
    }

    /// One batch on its own: `begin_batch`, then the steps in a plan of their own, submitted.
    /// (A run joins `steps` to its forward plan instead.)
    pub fn accumulate(&mut self, gpu: &Gpu, input: &Tensor, n_valid: usize) -> Result<()> {
        let steps = self.steps(gpu, input)?;
        self.begin_batch(gpu, n_valid)?;
        let plan = Plan { steps };
        plan.submit(gpu);
        gpu.check_alive()
    }

    /// The whole Gram of the images seen so far (N x N in memory: for the analyses that
    /// combine Grams; a run streams `source` instead).
    pub fn finish(&self, gpu: &Gpu) -> Result<Gram> {
        Gram::collect(&mut self.source(gpu)?)
    }

    /// The images seen so far as a [`GramSource`]: reads the row statistics back and computes
    /// the diagonal (and, for sketches, the products with S 1) on the GPU, then hands out
    /// blocks of inner products on demand.
    pub fn source<'a>(&'a self, gpu: &'a Gpu) -> Result<FlatSource<'a>> {
        let n = self.count;
        let off = self.row_offset;
        let parts = splits(self.variant, self.width);
        let stride = (n + off).max(1);
        let limit = self.max_buffer.min(BLOCK_BYTES);
        let by_rows = (limit / (self.width as u64 * 4)) as usize;
        let by_products = (limit / (parts as u64 * stride as u64 * 4)) as usize;
        let tile = self.variant.tile().0;
        let mut block_rows = by_rows.min(by_products).min(n).max(1);
        if block_rows >= tile {
            block_rows -= block_rows % tile;
        }
        let label = |s: &str| format!("rdm {s}");
        let mut source = FlatSource {
            acc: self,
            gpu,
            stats: GramStats::new(0, self.dim, vec![], vec![], vec![], vec![], 0.0, None)?,
            block_rows,
            stride,
            parts,
            rows: gpu.zeros(&label("block rows"), &[block_rows, self.width])?,
            products: gpu.zeros(&label("block products"), &[parts, block_rows, stride])?,
        };
        source.stats = source.read_stats()?;
        Ok(source)
    }

    /// Exact squared norms of the centred vectors |x_i - mean_i|^2 (from the row statistics,
    /// also in sketch mode), e.g. to compare with the sketch's own estimate.
    pub fn centred_norms(&self, gpu: &Gpu) -> Result<Vec<f64>> {
        Ok(self
            .row_stats(gpu)?
            .chunks(4)
            .map(|s| s[2] as f64 - (s[1] as f64).powi(2) / self.dim as f64)
            .collect())
    }

    /// The row statistics (a, t, u, 0) of the images seen so far, read back: [n, 4].
    fn row_stats(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        if self.count == 0 {
            return Ok(Vec::new());
        }
        let bytes = gpu.read_bytes(&self.stats.buffer, 0, (self.count * 16) as u64)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }
}

/// The inner products of a [`GramAccumulator`]'s stored rows, a block of rows at a time (see
/// the module comment). Holds two block buffers on the GPU while it lives.
pub struct FlatSource<'a> {
    acc: &'a GramAccumulator,
    gpu: &'a Gpu,
    stats: GramStats,
    block_rows: usize,
    /// Columns of a row of `products`: every stored row, S 1 included.
    stride: usize,
    parts: usize,
    /// A block's store rows, [block_rows, width].
    rows: Tensor,
    /// A block's split-K inner products, [parts, block_rows, stride].
    products: Tensor,
}

/// One `rdm_gram_*` dispatch: `rows` rows of the block buffer from `a_first` (images from
/// `a_image0`) against the stored rows of global index `cols`.
struct GramJob {
    a_first: usize,
    rows: usize,
    a_image0: usize,
    cols: Range<usize>,
}

impl FlatSource<'_> {
    /// Copy the store rows of images `images` into the block buffer.
    fn copy_rows(&self, images: Range<usize>) -> Vec<Step> {
        let acc = self.acc;
        let (lo, hi) = (images.start + acc.row_offset, images.end + acc.row_offset);
        let mut steps = Vec::new();
        for chunk in &acc.store {
            let (a, b) = (lo.max(chunk.row0), hi.min(chunk.row0 + chunk.rows));
            if a >= b {
                continue;
            }
            steps.push(Step::Copy {
                src: chunk
                    .tensor
                    .window((a - chunk.row0) * acc.width, &[(b - a) * acc.width]),
                dst: self.rows.buffer.clone(),
                dst_offset: ((a - lo) * acc.width * 4) as u64,
            });
        }
        steps
    }

    /// The dispatches of one job, one per store buffer that holds columns of it.
    fn gram_steps(&self, job: &GramJob) -> Result<Vec<Step>> {
        let acc = self.acc;
        let variant = acc.variant;
        let (tm, tn) = variant.tile();
        let mut steps = Vec::new();
        for chunk in &acc.store {
            let j0 = job.cols.start.max(chunk.row0);
            let j1 = job.cols.end.min(chunk.row0 + chunk.rows);
            if j0 >= j1 {
                continue;
            }
            let p = GramParams {
                width: (acc.width / variant.unit()) as u32,
                rows: job.rows as u32,
                a_first: job.a_first as u32,
                a_image0: job.a_image0 as u32,
                b_row0: chunk.row0 as u32,
                b_rows: chunk.rows as u32,
                j0: (j0 - chunk.row0) as u32,
                j1: (j1 - chunk.row0) as u32,
                stride: self.stride as u32,
                use_shift: matches!(acc.mode, FlatMode::Exact) as u32,
                row_offset: acc.row_offset as u32,
                capacity: acc.capacity as u32,
                split_len: (split_floats(variant) / variant.unit()) as u32,
                splits: self.parts as u32,
                split_stride: (self.block_rows * self.stride) as u32,
                _pad: 0,
            };
            let groups = self.parts * job.rows.div_ceil(tm) * (j1 - j0).div_ceil(tn);
            let d = Dispatch::new(
                self.gpu,
                variant.kernel(),
                &[],
                &p,
                &[&self.rows, &chunk.tensor, &acc.stats, &self.products],
                grid(self.gpu, groups),
            )?;
            steps.push(Step::Kernel(
                d.with_flops(2 * (job.rows * (j1 - j0) * acc.width) as u64),
            ));
        }
        Ok(steps)
    }

    /// Run `steps` and read back the split-K products of the block's first `rows` rows.
    fn run(&self, steps: Vec<Step>, rows: usize) -> Result<Products> {
        Plan { steps }.run(self.gpu)?;
        let part = self.block_rows * self.stride;
        let bytes = self.gpu.read_bytes(
            &self.products.buffer,
            0,
            (((self.parts - 1) * part + rows * self.stride) * 4) as u64,
        )?;
        Ok(Products {
            vals: bytemuck::cast_slice(&bytes).to_vec(),
            part,
            parts: self.parts,
            stride: self.stride,
        })
    }

    /// The per-image sums: row statistics read back, and on the GPU each image's product with
    /// itself (in tiles along the diagonal, by the same dot product as the full rows) and, for
    /// a sketch, with S 1.
    fn read_stats(&self) -> Result<GramStats> {
        let acc = self.acc;
        let (n, off) = (acc.count, acc.row_offset);
        let stats = acc.row_stats(self.gpu)?;
        let tm = acc.variant.tile().0;
        let mut diag = Vec::with_capacity(n);
        let mut ye = Vec::with_capacity(n);
        for r0 in (0..n).step_by(self.block_rows) {
            let len = self.block_rows.min(n - r0);
            let mut steps = self.copy_rows(r0..r0 + len);
            for t0 in (0..len).step_by(tm) {
                let rows = tm.min(len - t0);
                let first = off + r0 + t0;
                steps.extend(self.gram_steps(&GramJob {
                    a_first: t0,
                    rows,
                    a_image0: r0 + t0,
                    cols: first..first + rows,
                })?);
            }
            if off > 0 {
                steps.extend(self.gram_steps(&GramJob {
                    a_first: 0,
                    rows: len,
                    a_image0: r0,
                    cols: 0..1,
                })?);
            }
            let products = self.run(steps, len)?;
            for r in 0..len {
                diag.push(products.get(r, off + r0 + r));
                if off > 0 {
                    ye.push(products.get(r, 0));
                }
            }
        }
        let (ye, ee) = match acc.mode {
            FlatMode::Exact => (
                (0..n).map(|i| stats[4 * i + 1] as f64).collect(),
                acc.dim as f64,
            ),
            FlatMode::Sketch { dim: k, .. } => {
                let s1 = self
                    .gpu
                    .read_bytes(&acc.store[0].tensor.buffer, 0, (k * 4) as u64)?;
                let s1: &[f32] = bytemuck::cast_slice(&s1);
                // The count sketch is unscaled: E <Sx, Sy> = <x, y>.
                (ye, s1.iter().map(|&v| v as f64 * v as f64).sum::<f64>())
            }
        };
        let shift = (0..n).map(|i| stats[4 * i] as f64).collect();
        let centre = (0..n)
            .map(|i| stats[4 * i + 1] as f64 / acc.dim as f64)
            .collect();
        let sketch = match acc.mode {
            FlatMode::Exact => None,
            FlatMode::Sketch { dim, .. } => Some(dim),
        };
        GramStats::new(n, acc.dim, shift, centre, diag, ye, ee, sketch)
    }
}

/// A block's split-K inner products as read back: [parts, block rows, stride] f32.
struct Products {
    vals: Vec<f32>,
    /// Floats per part.
    part: usize,
    parts: usize,
    stride: usize,
}

impl Products {
    /// Entry (r, j): the parts added in f64 in a fixed order.
    fn get(&self, r: usize, j: usize) -> f64 {
        let at = r * self.stride + j;
        (1..self.parts).fold(self.vals[at] as f64, |t, s| {
            t + self.vals[s * self.part + at] as f64
        })
    }
}

impl GramSource for FlatSource<'_> {
    fn stats(&self) -> &GramStats {
        &self.stats
    }

    fn block_rows(&self) -> usize {
        self.block_rows
    }

    fn block(&mut self, images: Range<usize>) -> Result<Cow<'_, [f64]>> {
        let (n, off) = (self.acc.count, self.acc.row_offset);
        let len = images.len();
        if images.end > n || len > self.block_rows {
            return Err(Error::shape(
                "rdm block",
                format!(
                    "rows {images:?} of {n} images in blocks of {}",
                    self.block_rows
                ),
            ));
        }
        let mut steps = self.copy_rows(images.clone());
        steps.extend(self.gram_steps(&GramJob {
            a_first: 0,
            rows: len,
            a_image0: images.start,
            cols: off..off + n,
        })?);
        let products = self.run(steps, len)?;
        let mut out = Vec::with_capacity(len * n);
        for r in 0..len {
            out.extend((off..off + n).map(|j| products.get(r, j)));
        }
        Ok(Cow::Owned(out))
    }
}

/// Choose exact or sketched flat RDMs per tap within `budget` bytes of GPU memory in all:
/// every tap first gets a sketch (the least any tap can hold), then taps become exact in
/// ascending order of their extra cost while the total fits. Deterministic; ties by index.
pub fn plan_flat_modes(
    budget: u64,
    capacity: usize,
    batch: usize,
    dims: &[usize],
    sketch_dim: usize,
    seed: u64,
) -> Vec<FlatMode> {
    let sketch = FlatMode::Sketch {
        dim: sketch_dim,
        seed,
    };
    let mut modes = vec![sketch; dims.len()];
    let mut used: u64 = dims
        .iter()
        .map(|&d| GramAccumulator::bytes(sketch, d, capacity, batch))
        .sum();
    let mut order: Vec<usize> = (0..dims.len()).collect();
    let extra = |i: usize| {
        GramAccumulator::bytes(FlatMode::Exact, dims[i], capacity, batch)
            .saturating_sub(GramAccumulator::bytes(sketch, dims[i], capacity, batch))
    };
    order.sort_by_key(|&i| (extra(i), i));
    for i in order {
        if used + extra(i) <= budget {
            used += extra(i);
            modes[i] = FlatMode::Exact;
        }
    }
    modes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_loop_count() {
        // k = 96: 24 quads, 3 per invocation, so QPL 8 and one pass; D = 300: 4 blocks, one run.
        assert_eq!(sketch_quads_per_lane(96), 8);
        assert_eq!(sketch_iterations(300, 96), 1 + 4 + 9 + 16 + 64);
        // The default k = 1024: 256 quads, QPL 32 in one pass; 784 blocks (a ResNet-50 layer1
        // tap), 13 runs.
        assert_eq!(sketch_quads_per_lane(1024), 32);
        assert_eq!(
            sketch_iterations(802_816, 1024),
            1 + 784 + 13 * 33 + 64 + 64
        );
        // k = 1096: 274 quads take two passes of 256.
        assert_eq!(
            sketch_iterations(76_728, 1096),
            2 * (1 + 71 + 2 * 33 + 64) + 64
        );
        // About 1.5 iterations per block of 1024: the default sketch walks rows of up to about
        // 40 million features within the budget.
        assert!(sketch_iterations(40_000_000, 1024) < LOOP_BUDGET);
        assert!(sketch_iterations(41_000_000, 1024) > LOOP_BUDGET);
    }
}
