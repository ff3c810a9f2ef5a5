//! Matrix multiplication with a fused epilogue, the workhorse of every model.

use crate::error::{Error, Result};
use crate::gpu::ops::split::{RowWindow, row_chunks};
use crate::gpu::ops::texture_launch::{ATexels, texture_dispatch};
use crate::gpu::ops::{check_len, check_loop_steps};
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

/// Output rows and columns per workgroup of matmul_subgroup (its `ROWS` and `COLS`; a unit test
/// checks they agree).
/// The grid must be exact: on lavapipe a workgroup past the end of the work still runs the
/// whole kernel with its lanes masked off (gallivm executes both sides of a branch), so
/// dispatching for 8-row blocks against 24-row workgroups once halved the kernel's speed.
pub const SUBGROUP_ROWS: usize = 40;
pub const SUBGROUP_COLS: usize = 64;

/// Texels per row of the textures `matmul_texture` reads A and B from (its TEX_MASK + 1; a
/// unit test checks they agree). A power of two, so a flat index splits into a column and a row
/// with a mask and a shift.
pub const TEXTURE_WIDTH: u32 = 4096;

/// The nonlinearity applied last in a fused epilogue (codes match `shaders/epilogue.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Act {
    #[default]
    None,
    Relu,
    Relu6,
    /// Exact GELU, x * Phi(x) (PyTorch's default `nn.GELU()`).
    Gelu,
    Silu,
    /// GELU with the tanh approximation (`nn.GELU(approximate='tanh')`).
    GeluTanh,
}

impl Act {
    pub fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::Relu => 1,
            Act::Relu6 => 2,
            Act::Gelu => 3,
            Act::Silu => 4,
            Act::GeluTanh => 5,
        }
    }

    /// The same function on the CPU, for references in tests.
    pub fn apply(self, v: f32) -> f32 {
        match self {
            Act::None => v,
            Act::Relu => v.max(0.0),
            Act::Relu6 => v.clamp(0.0, 6.0),
            Act::Gelu => (0.5 * v as f64 * (1.0 + erf(v as f64 / std::f64::consts::SQRT_2))) as f32,
            Act::Silu => v / (1.0 + (-v).exp()),
            Act::GeluTanh => {
                let u = 0.797_884_6 * (v + 0.044715 * v * v * v);
                0.5 * v * (1.0 + u.tanh())
            }
        }
    }
}

/// erf in f64 (for CPU references): W. J. Cody's rational approximations are overkill here;
/// a series/continued-fraction pair accurate to ~1e-15 suffices.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series: erf x = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        for n in 1..200 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // Continued fraction for erfc, converging fast for |x| >= 2.5.
        let z = x.abs();
        let mut f = 0.0;
        for n in (1..60).rev() {
            f = n as f64 / 2.0 / (z + f);
        }
        let erfc = (-z * z).exp() / (z + f) / std::f64::consts::PI.sqrt();
        (1.0 - erfc).copysign(x)
    }
}

/// What the matmul does to each output before storing it:
/// `out = act(scale * (acc + bias) + residual)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Epilogue<'a> {
    pub bias: Option<&'a Tensor>,
    pub scale: Option<&'a Tensor>,
    pub residual: Option<&'a Tensor>,
    pub act: Act,
}

impl Epilogue<'_> {
    /// The pipeline constants that select the epilogue's terms (shaders/epilogue.wgsl).
    pub fn constants(&self) -> [(&'static str, f64); 4] {
        [
            ("HAS_BIAS", self.bias.is_some() as u8 as f64),
            ("HAS_SCALE", self.scale.is_some() as u8 as f64),
            ("HAS_RES", self.residual.is_some() as u8 as f64),
            ("ACT", self.act.code() as f64),
        ]
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulMeta {
    m: u32,
    n: u32,
    k: u32,
    a_stride: u32,
    /// Elements between consecutive batch items in A and in B (0 for one matmul).
    a_batch: u32,
    b_batch: u32,
    _pad: [u32; 2],
}

impl MatmulMeta {
    fn new(m: usize, n: usize, k: usize, a_stride: usize, a_batch: usize, b_batch: usize) -> Self {
        MatmulMeta {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            a_stride: a_stride as u32,
            a_batch: a_batch as u32,
            b_batch: b_batch as u32,
            _pad: [0; 2],
        }
    }
}

/// The kernels that compute a matmul; `matmul()` picks one per adapter, `matmul_with()` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulVariant {
    /// `shaders/matmul_tiled.wgsl`: workgroup-memory tiles, for real GPUs; any shape.
    Tiled,
    /// `shaders/matmul_subgroup.wgsl`: one 8-lane subgroup per workgroup with broadcasts, for
    /// CPU adapters (lavapipe). Needs SUBGROUP with a subgroup size fixed at 8, and N % 4 == 0.
    Subgroup,
    /// `shaders/matmul_texture.wgsl`: the subgroup kernel reading A and B from textures that
    /// each launch first copies them into (texel fetches are 2-7x cheaper than storage loads on
    /// lavapipe from Mesa 22.3). Needs what `Subgroup` needs; work it cannot take in one launch
    /// (over the texture size limit, or split into row chunks) runs on `Subgroup`.
    Texture,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 3] = [
        MatmulVariant::Tiled,
        MatmulVariant::Subgroup,
        MatmulVariant::Texture,
    ];

    pub fn kernel(self) -> &'static str {
        match self {
            MatmulVariant::Tiled => "matmul_tiled",
            MatmulVariant::Subgroup => "matmul_subgroup",
            MatmulVariant::Texture => "matmul_texture",
        }
    }

    /// Whether the variant reads its inputs from texture copies (`Texture`). Where the timing
    /// chose it, the kernels with a texture twin read textures too
    /// (`tuning::Choices::reads_textures`, `Attention`'s softmax).
    pub fn reads_textures(self) -> bool {
        self == MatmulVariant::Texture
    }

    /// Whether the variant runs the subgroup kernel's 40 x 64 blocks (`Subgroup`, `Texture`).
    pub fn is_subgroup(self) -> bool {
        matches!(self, MatmulVariant::Subgroup | MatmulVariant::Texture)
    }

    /// The most loop steps one invocation runs for a depth of `k` (see `gpu::LOOP_BUDGET`):
    /// the subgroup body one per 8-deep block and one per remaining k, the tiled one
    /// `tiled_loop_steps`.
    pub fn loop_steps(self, k: usize) -> usize {
        match self {
            MatmulVariant::Tiled => tiled_loop_steps(k),
            MatmulVariant::Subgroup | MatmulVariant::Texture => k / 8 + k % 8,
        }
    }

    /// Why this variant cannot run on `gpu` with `n` output columns, or `None` if it can.
    pub fn unsupported(self, gpu: &Gpu, n: usize) -> Option<String> {
        match self {
            MatmulVariant::Tiled => None,
            MatmulVariant::Subgroup | MatmulVariant::Texture => {
                let (min, max) = (gpu.info.subgroup_min_size, gpu.info.subgroup_max_size);
                if !gpu.has_subgroups() {
                    Some(format!("adapter '{}' has no subgroups", gpu.info.name))
                } else if (min, max) != (8, 8) {
                    // The kernel's workgroup of 8 must be exactly one subgroup for its
                    // broadcasts to reach every lane.
                    Some(format!(
                        "adapter '{}' has subgroup sizes {min}..{max}, the kernel needs exactly 8",
                        gpu.info.name
                    ))
                } else if !n.is_multiple_of(4) {
                    Some(format!(
                        "N = {n} is not a multiple of 4 (B is read as vec4)"
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// The loop steps one invocation of the tiled kernels (matmul_tiled, conv2d_tiled) runs for a
/// depth of `k`: each 16-deep tile costs 1 + 16, its loop step and the 16 of the loop over the
/// tile's k (their fixed loops over 4 rows or columns are written out; measured on lavapipe:
/// K = 57,600 right, 64,000 wrong).
pub(crate) fn tiled_loop_steps(k: usize) -> usize {
    k.div_ceil(16) * 17
}

/// The variant `matmul()` uses on `gpu` for `n` output columns: the one timed fastest on this
/// adapter (gpu::tuning; the subgroup kernel on lavapipe, 10-20x the tiled one there) when it
/// can run this shape, else the tiled one, which runs everywhere.
pub fn preferred_variant(gpu: &Gpu, n: usize) -> MatmulVariant {
    runnable(gpu, gpu.choices().matmul, n)
}

/// `v` if it can run `n` output columns here, else the tiled kernel.
pub(crate) fn runnable(gpu: &Gpu, v: MatmulVariant, n: usize) -> MatmulVariant {
    if v.unsupported(gpu, n).is_none() {
        v
    } else {
        MatmulVariant::Tiled
    }
}

/// `out[M, N] = epilogue(A @ B)` with A's row `i` starting at element `i * a_stride` of `a`
/// (`a_stride = K` for a plain matrix) and B stored [K, N] (linear weights transposed at load).
/// The kernel is chosen per adapter and shape by `preferred_variant`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    gpu: &Gpu,
    a: &Tensor,
    a_stride: usize,
    b: &Tensor,
    out: &Tensor,
    m: usize,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    let n = b.shape.get(1).copied().unwrap_or(0);
    let variant = preferred_variant(gpu, n);
    matmul_with(gpu, variant, a, a_stride, b, out, m, epilogue)
}

/// `matmul` with the kernel given; fails if `variant` cannot run on this adapter or shape.
#[allow(clippy::too_many_arguments)]
pub fn matmul_with(
    gpu: &Gpu,
    variant: MatmulVariant,
    a: &Tensor,
    a_stride: usize,
    b: &Tensor,
    out: &Tensor,
    m: usize,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    let (k, n) = match b.shape.as_slice() {
        [k, n] => (*k, *n),
        s => {
            return Err(Error::shape(
                "matmul",
                format!("B must be [K, N], got {s:?}"),
            ));
        }
    };
    matmul_batched(
        gpu,
        variant,
        a,
        a_stride,
        b,
        (k, n),
        out,
        m,
        epilogue,
        Batch::ONE,
    )
}

/// Independent matmuls of one shape in one dispatch (e.g. attention's per-head products):
/// item `z` reads A from element `z * a_stride` and B from `z * b_stride` of their tensors and
/// writes `out[z]` (items are contiguous [count, M, N] in `out` and in the residual).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub count: usize,
    pub a_stride: usize,
    pub b_stride: usize,
}

impl Batch {
    pub const ONE: Batch = Batch {
        count: 1,
        a_stride: 0,
        b_stride: 0,
    };
}

/// `batch.count` matmuls `out[z] = epilogue(A[z] @ B[z])` of [M, K] by [K, N] (`kn`), with the
/// kernel given. One matmul (`Batch::ONE`) larger than the adapter's limits is split into row
/// chunks; a batch of several must fit one launch (callers choose smaller batches).
#[allow(clippy::too_many_arguments)]
pub fn matmul_batched(
    gpu: &Gpu,
    variant: MatmulVariant,
    a: &Tensor,
    a_stride: usize,
    b: &Tensor,
    (k, n): (usize, usize),
    out: &Tensor,
    m: usize,
    epilogue: Epilogue,
    batch: Batch,
) -> Result<Dispatch> {
    const OP: &str = "matmul";
    let z = batch.count.max(1);
    let (a_batch, b_batch) = if z > 1 {
        (batch.a_stride, batch.b_stride)
    } else {
        (0, 0)
    };
    if variant.is_subgroup() && b_batch % 4 != 0 {
        return Err(Error::shape(
            OP,
            format!("B's batch stride {b_batch} is not a multiple of 4 (B is read as vec4)"),
        ));
    }
    if a_stride < k {
        return Err(Error::shape(
            OP,
            format!("A row stride {a_stride} is below K = {k}"),
        ));
    }
    if let Some(why) = variant.unsupported(gpu, n) {
        return Err(Error::shape(
            OP,
            format!("kernel {} cannot run here: {why}", variant.kernel()),
        ));
    }
    check_loop_steps(
        OP,
        &format!("K = {k} ({})", variant.kernel()),
        variant.loop_steps(k),
        "a layer with this many inputs per output is not supported",
    )?;
    if m > 0 {
        check_len(OP, "A", a, (z - 1) * a_batch + (m - 1) * a_stride + k)?;
    }
    check_len(OP, "B", b, (z - 1) * b_batch + k * n)?;
    check_len(OP, "out", out, z * m * n)?;
    let dummy = gpu.dummy();
    for (what, t, len) in [
        ("bias", epilogue.bias, n),
        ("scale", epilogue.scale, n),
        ("residual", epilogue.residual, z * m * n),
    ] {
        if let Some(t) = t {
            check_len(OP, what, t, len)?;
        }
    }
    // Indices are u32 in the kernels.
    for (what, len) in [
        ("A", (z - 1) * a_batch + (m.max(1) - 1) * a_stride + k),
        ("out", z * m * n),
        ("B", (z - 1) * b_batch + k * n),
    ] {
        if len > u32::MAX as usize {
            return Err(Error::shape(
                OP,
                format!("{what} has {len} elements, over the 2^32 a kernel can index"),
            ));
        }
    }
    // Rows that one launch's grid can hold; the row windows of A, the residual and out must
    // each fit one storage binding. Larger work is split into row chunks (ops::split).
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    let max_rows = match variant {
        MatmulVariant::Tiled => {
            if n.div_ceil(64) > max_groups {
                return Err(Error::Limit {
                    what: format!("matmul grid of {} column tiles", n.div_ceil(64)),
                    needed: n.div_ceil(64) as u64,
                    limit: max_groups as u64,
                    adapter: gpu.info.name.clone(),
                    advice: "the layer is too wide for one dispatch on this adapter".into(),
                });
            }
            max_groups * 64
        }
        // grid() spreads the linear workgroup count over two dimensions.
        MatmulVariant::Subgroup | MatmulVariant::Texture => {
            max_groups * max_groups / n.div_ceil(SUBGROUP_COLS).max(1) * SUBGROUP_ROWS
        }
    };
    let mut windows = vec![
        RowWindow {
            what: "A",
            per_row: a_stride,
        },
        RowWindow {
            what: "out",
            per_row: n,
        },
    ];
    if epilogue.residual.is_some() {
        windows.push(RowWindow {
            what: "residual",
            per_row: n,
        });
    }
    let chunks = if z == 1 {
        row_chunks(gpu, OP, m, &windows, max_rows)?
    } else if z > max_groups {
        return Err(Error::Limit {
            what: format!("batched matmul of {z} items"),
            needed: z as u64,
            limit: max_groups as u64,
            adapter: gpu.info.name.clone(),
            advice: "use a smaller --batch".into(),
        });
    } else {
        // A batch is one launch; bindings over the limit are reported when it is bound.
        std::iter::once(0..m).collect()
    };
    let whole = chunks.len() == 1;
    let variant = if variant == MatmulVariant::Texture {
        let a_len = if m == 0 {
            0
        } else {
            (z - 1) * a_batch + (m - 1) * a_stride + k
        };
        if whole
            && let Some(d) = texture_dispatch(
                gpu,
                MatmulVariant::Texture.kernel(),
                &epilogue.constants(),
                (a, a_len, ATexels::Scalar),
                (b, (z - 1) * b_batch + k * n),
                out,
                &epilogue,
                &MatmulMeta::new(m, n, k, a_stride, a_batch, b_batch),
                subgroup_grid(gpu, m, n, z),
            )?
        {
            return Ok(d.with_flops(2 * (z * m * n * k) as u64));
        }
        // Too large for one launch from textures: the same kernel body from storage buffers.
        MatmulVariant::Subgroup
    } else {
        variant
    };
    let mut launches = Vec::with_capacity(chunks.len());
    for rows in chunks {
        let mc = rows.len();
        let window = |t: &Tensor, per_row: usize, len: usize| {
            if whole {
                t.clone()
            } else {
                t.window(rows.start * per_row, &[len])
            }
        };
        let a_len = if mc == 0 { 0 } else { (mc - 1) * a_stride + k };
        let (a_win, out_win, res_win) = if z == 1 {
            (
                window(a, a_stride, a_len),
                window(out, n, mc * n),
                epilogue.residual.map(|r| window(r, n, mc * n)),
            )
        } else {
            (a.clone(), out.clone(), epilogue.residual.cloned())
        };
        let meta = MatmulMeta::new(mc, n, k, a_stride, a_batch, b_batch);
        let groups = match variant {
            MatmulVariant::Tiled => [n.div_ceil(64) as u32, mc.div_ceil(64) as u32, z as u32],
            MatmulVariant::Subgroup | MatmulVariant::Texture => subgroup_grid(gpu, mc, n, z),
        };
        launches.push((meta, a_win, out_win, res_win, groups));
    }
    let launches: Vec<_> = launches
        .iter()
        .map(|(meta, a_win, out_win, res_win, groups)| {
            let tensors = vec![
                a_win,
                b,
                epilogue.bias.unwrap_or(&dummy),
                epilogue.scale.unwrap_or(&dummy),
                res_win.as_ref().unwrap_or(&dummy),
                out_win,
            ];
            (*meta, tensors, *groups)
        })
        .collect();
    Ok(
        Dispatch::split(gpu, variant.kernel(), &epilogue.constants(), &launches)?
            .with_flops(2 * (z * m * n * k) as u64),
    )
}

/// The grid of the subgroup kernels' 40 x 64 blocks over M x N, times `z` batch items.
fn subgroup_grid(gpu: &Gpu, m: usize, n: usize, z: usize) -> [u32; 3] {
    match n.div_ceil(SUBGROUP_COLS) * m.div_ceil(SUBGROUP_ROWS) {
        0 => [0, 1, 1],
        count => {
            let [x, y, _] = grid(gpu, count);
            [x, y, z as u32]
        }
    }
}
