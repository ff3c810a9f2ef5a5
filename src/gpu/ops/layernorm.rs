//! LayerNorm over the last dimension.

use crate::error::{Error, Result};
use crate::gpu::ops::split::{RowWindow, row_chunks};
use crate::gpu::ops::{check_len, check_loop_steps};
use crate::gpu::{Dispatch, Elem, Gpu, LOOP_BUDGET, Resource, Tensor, TextureCopy, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Meta {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

/// The kernels that compute a LayerNorm; `layernorm()` picks one per adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayernormVariant {
    /// `shaders/layernorm.wgsl`: 64 invocations per row reducing through workgroup memory, for
    /// real GPUs; any C.
    Workgroup,
    /// `shaders/layernorm_rows.wgsl`: one invocation per row, 8 rows per workgroup, no
    /// barriers, for CPU adapters (lavapipe). Needs C % 4 == 0 and C < `ROWS_MAX_COLS`.
    Rows,
    /// `shaders/layernorm_rows_texture.wgsl`: `Rows` reading x, weight and bias from texture
    /// copies, for CPU adapters whose texel loads are cheaper than buffer loads (those whose
    /// matmul reads textures, `Choices::reads_textures`). Runs as `Rows` where a copy would
    /// exceed the texture limits or the rows are split over several launches.
    RowsTexture,
}

/// Widest row `LayernormVariant::Rows` takes: its 3 C / 4 loop iterations per invocation stay
/// within `LOOP_BUDGET`.
pub const ROWS_MAX_COLS: usize = LOOP_BUDGET * 4 / 3;

impl LayernormVariant {
    pub const ALL: [LayernormVariant; 3] = [
        LayernormVariant::Workgroup,
        LayernormVariant::Rows,
        LayernormVariant::RowsTexture,
    ];

    /// The one for this adapter and width: on CPU adapters where the width allows, `RowsTexture`
    /// where the matmul reads textures, else `Rows`.
    pub fn pick(gpu: &Gpu, cols: usize) -> LayernormVariant {
        if !gpu.is_cpu() || Self::Rows.unsupported(cols).is_some() {
            LayernormVariant::Workgroup
        } else if gpu.choices().reads_textures() {
            LayernormVariant::RowsTexture
        } else {
            LayernormVariant::Rows
        }
    }

    /// Why this kernel cannot normalise rows of `cols`, if it cannot.
    pub fn unsupported(self, cols: usize) -> Option<String> {
        match self {
            LayernormVariant::Workgroup => None,
            LayernormVariant::Rows | LayernormVariant::RowsTexture => {
                if !cols.is_multiple_of(4) {
                    Some(format!("{cols} columns are not a multiple of 4"))
                } else if cols >= ROWS_MAX_COLS {
                    Some(format!("{cols} columns are {ROWS_MAX_COLS} or more"))
                } else {
                    None
                }
            }
        }
    }

    fn kernel(self) -> &'static str {
        match self {
            LayernormVariant::Workgroup => "layernorm",
            LayernormVariant::Rows => "layernorm_rows",
            LayernormVariant::RowsTexture => "layernorm_rows_texture",
        }
    }

    /// The most loop steps one invocation runs for rows of `cols` (see `LOOP_BUDGET`): the
    /// workgroup kernel's three walks over the row, one step per 64 columns, and its two
    /// reductions of 6 halvings; the per-row kernels' three walks of C / 4 vec4.
    fn loop_steps(self, cols: usize) -> usize {
        match self {
            LayernormVariant::Workgroup => 3 * cols.div_ceil(64) + 12,
            LayernormVariant::Rows | LayernormVariant::RowsTexture => 3 * cols.div_ceil(4),
        }
    }

    /// Rows one workgroup normalises.
    fn rows_per_group(self) -> usize {
        match self {
            LayernormVariant::Workgroup => 1,
            LayernormVariant::Rows | LayernormVariant::RowsTexture => 8,
        }
    }
}

/// `out = LayerNorm(x)` over the last dimension of `x`, with affine `weight` and `bias` [C],
/// by the kernel this adapter wants (`LayernormVariant::pick`).
pub fn layernorm(
    gpu: &Gpu,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<Dispatch> {
    let variant = LayernormVariant::pick(gpu, x.cols());
    layernorm_with(gpu, variant, x, weight, bias, eps, out)
}

/// `layernorm` by the kernel given (tests and benches run each).
pub fn layernorm_with(
    gpu: &Gpu,
    variant: LayernormVariant,
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "layernorm";
    let cols = x.cols();
    let rows = x.rows();
    if let Some(why) = variant.unsupported(cols) {
        return Err(Error::shape(
            OP,
            format!("kernel {} cannot run here: {why}", variant.kernel()),
        ));
    }
    check_loop_steps(
        OP,
        &format!("rows of {cols} ({})", variant.kernel()),
        variant.loop_steps(cols),
        "a row this wide is not supported",
    )?;
    if weight.len() != cols || bias.len() != cols {
        return Err(Error::shape(
            OP,
            format!(
                "weight {:?} and bias {:?} must have {cols} elements",
                weight.shape, bias.shape
            ),
        ));
    }
    check_len(OP, "out", out, rows * cols)?;
    // Workgroups of rows_per_group rows over a 2-D grid; rows beyond one binding or grid are
    // split.
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    let per_group = variant.rows_per_group();
    let windows = [
        RowWindow {
            what: "x",
            per_row: cols,
        },
        RowWindow {
            what: "out",
            per_row: cols,
        },
    ];
    let chunks = row_chunks(gpu, OP, rows, &windows, max_groups * max_groups * per_group)?;
    let whole = chunks.len() == 1;
    if variant == LayernormVariant::RowsTexture && whole {
        let meta = Meta {
            rows: rows as u32,
            cols: cols as u32,
            eps,
            _pad: 0,
        };
        let groups = grid(gpu, rows.div_ceil(per_group));
        if let Some(d) = rows_from_textures(gpu, &meta, [x, weight, bias], out, groups)? {
            return Ok(d);
        }
    }
    // The buffer kernel for every other case, `RowsTexture` over several launches included.
    let kernel = match variant {
        LayernormVariant::RowsTexture => LayernormVariant::Rows.kernel(),
        v => v.kernel(),
    };
    let launches: Vec<_> = chunks
        .into_iter()
        .map(|r| {
            let (xw, ow) = if whole {
                (x.clone(), out.clone())
            } else {
                let len = r.len() * cols;
                (
                    x.window(r.start * cols, &[len]),
                    out.window(r.start * cols, &[len]),
                )
            };
            let meta = Meta {
                rows: r.len() as u32,
                cols: cols as u32,
                eps,
                _pad: 0,
            };
            (
                meta,
                vec![xw, weight.clone(), bias.clone(), ow],
                grid(gpu, r.len().div_ceil(per_group)),
            )
        })
        .collect();
    let launches: Vec<_> = launches
        .iter()
        .map(|(m, t, g)| (*m, t.iter().collect::<Vec<&Tensor>>(), *g))
        .collect();
    Dispatch::split(gpu, kernel, &[], &launches)
}

/// `layernorm_rows_texture` over all rows in one launch, with the copies of x, weight and bias
/// (f32) into scratch textures; `None` where a copy cannot be made (texture limits, an offset
/// that does not start a texel, f16 tensors).
fn rows_from_textures(
    gpu: &Gpu,
    meta: &Meta,
    inputs: [&Tensor; 3],
    out: &Tensor,
    groups: [u32; 3],
) -> Result<Option<Dispatch>> {
    if inputs.iter().any(|t| t.elem != Elem::F32) {
        return Ok(None);
    }
    let format = wgpu::TextureFormat::Rgba32Float;
    let purposes = ["layernorm x", "layernorm weight", "layernorm bias"];
    let copies: Option<Vec<TextureCopy>> = inputs
        .iter()
        .zip(purposes)
        .map(|(t, purpose)| TextureCopy::to_scratch(gpu, purpose, t, t.len(), format))
        .collect();
    let Some(copies) = copies else {
        return Ok(None);
    };
    let views: Vec<wgpu::TextureView> = copies
        .iter()
        .map(|c| c.dst.create_view(&Default::default()))
        .collect();
    let mut resources: Vec<Resource> = views.iter().map(Resource::Texture).collect();
    resources.push(Resource::Tensor(out));
    let kernel = LayernormVariant::RowsTexture.kernel();
    Dispatch::with_textures(gpu, kernel, &[], meta, &resources, groups, copies).map(Some)
}
