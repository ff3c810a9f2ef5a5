//! Multi-head self-attention over a fused qkv projection.

use crate::error::{Error, Result};
use crate::gpu::ops::matmul::{Batch, Epilogue, MatmulVariant, matmul_batched, runnable};
use crate::gpu::ops::split::{RowWindow, row_chunks};
use crate::gpu::ops::{check_len, check_loop_steps};
use crate::gpu::{Dispatch, Gpu, LOOP_BUDGET, Tensor, TextureCopy, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Meta {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    scale: f32,
}

/// The most tokens one attention row holds (workgroup memory of `shaders/attention.wgsl`).
pub const MAX_TOKENS: usize = 4096;

/// The most loop steps one invocation of the fused kernel (shaders/attention.wgsl, 64 lanes)
/// runs: its scores walk T / 64 keys of dh + 1 steps, its exponentials T / 64 more, its
/// output dh / 64 columns of T + 1, and its two reductions 6 halvings each.
pub fn fused_loop_steps(tokens: usize, head_dim: usize) -> usize {
    let per_lane = tokens.div_ceil(64);
    per_lane * (2 + head_dim) + head_dim.div_ceil(64) * (1 + tokens) + 12
}

/// `out[B, T, H*dh]` = softmax(q k^T / sqrt(dh)) v per head, from `qkv` [B, T, 3, H, dh].
pub fn attention(
    gpu: &Gpu,
    qkv: &Tensor,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    out: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "attention";
    if tokens > MAX_TOKENS {
        return Err(Error::shape(
            OP,
            format!("{tokens} tokens exceed the kernel's {MAX_TOKENS}; use smaller input images"),
        ));
    }
    check_loop_steps(
        OP,
        &format!("{tokens} tokens of head size {head_dim} (fused kernel)"),
        fused_loop_steps(tokens, head_dim),
        "use smaller input images",
    )?;
    check_len(OP, "qkv", qkv, batch * tokens * 3 * heads * head_dim)?;
    check_len(OP, "out", out, batch * tokens * heads * head_dim)?;
    let meta = Meta {
        tokens: tokens as u32,
        heads: heads as u32,
        head_dim: head_dim as u32,
        scale: 1.0 / (head_dim as f32).sqrt(),
    };
    let flops = 4 * (batch * heads * tokens * tokens * head_dim) as u64;
    let max_groups = gpu.limits.max_compute_workgroups_per_dimension as usize;
    if tokens > max_groups || heads > max_groups {
        return Err(Error::Limit {
            what: format!("attention grid of {tokens} tokens x {heads} heads"),
            needed: tokens.max(heads) as u64,
            limit: max_groups as u64,
            adapter: gpu.info.name.clone(),
            advice: "use smaller input images".into(),
        });
    }
    // Images are independent: a batch whose qkv or output exceeds one storage binding (or
    // the grid's batch dimension) runs as several launches over windows of whole images.
    let width = heads * head_dim;
    let windows = [
        RowWindow {
            what: "qkv",
            per_row: tokens * 3 * width,
        },
        RowWindow {
            what: "out",
            per_row: tokens * width,
        },
    ];
    let chunks = row_chunks(gpu, OP, batch, &windows, max_groups)?;
    let whole = chunks.len() == 1;
    let launches: Vec<_> = chunks
        .into_iter()
        .map(|r| {
            let (q, o) = if whole {
                (qkv.clone(), out.clone())
            } else {
                (
                    qkv.window(
                        r.start * tokens * 3 * width,
                        &[r.len() * tokens * 3 * width],
                    ),
                    out.window(r.start * tokens * width, &[r.len() * tokens * width]),
                )
            };
            (q, o, [tokens as u32, heads as u32, r.len() as u32])
        })
        .collect();
    let launches: Vec<_> = launches
        .iter()
        .map(|(q, o, g)| (meta, vec![q, o], *g))
        .collect();
    Ok(Dispatch::split(gpu, "attention", &[], &launches)?.with_flops(flops))
}

/// How attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttentionVariant {
    /// `shaders/attention.wgsl`: one workgroup per query token and head, scores in workgroup
    /// memory; no scratch buffers. For real GPUs.
    Fused,
    /// Per-head layout (`attention_heads`), q k^T and p v as batched matmuls (the subgroup matmul
    /// on CPU adapters), a row softmax between them, and a merge back to the token stream. On
    /// lavapipe the fused kernel runs at about 1.5 GFLOP/s (loads are per lane there); this path
    /// inherits the matmul's speed: DINOv2 ViT-S/14, batch 8, attention 6.4 s -> 1.4 s per batch,
    /// forward 0.69 -> 1.23 images/s (`sparsescope bench`, same machine, same run).
    Matmul,
}

impl AttentionVariant {
    pub const ALL: [AttentionVariant; 2] = [AttentionVariant::Fused, AttentionVariant::Matmul];

    /// The variant timed fastest on this adapter (gpu::tuning): the matmul path on lavapipe,
    /// where the fused kernel is load-bound.
    pub fn preferred(gpu: &Gpu) -> AttentionVariant {
        gpu.choices().attention
    }
}

/// One attention shape (batch, tokens, heads, head size) with the scratch buffers its variant
/// needs, made once per forward pass and shared by every layer of it.
pub struct Attention {
    variant: AttentionVariant,
    /// The matmul kernel of the matmul path's products.
    matmul: MatmulVariant,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    /// Tokens rounded up to a multiple of 4 (the matmul path's key dimension).
    padded: usize,
    scratch: Option<Scratch>,
}

/// q [Z, T, dh], k^T [Z, dh, Tp], v [Z, Tp, dh], scores/weights [Z, T, Tp], o [Z, T, dh] for
/// Z = batch * heads.
struct Scratch {
    q: Tensor,
    kt: Tensor,
    v: Tensor,
    s: Tensor,
    o: Tensor,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HeadsMeta {
    tokens: u32,
    padded: u32,
    heads: u32,
    head_dim: u32,
    items: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SoftmaxMeta {
    rows: u32,
    tokens: u32,
    padded: u32,
    scale: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MergeMeta {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    total: u32,
}

impl Attention {
    /// Attention of this shape by `variant`, its products (matmul path) by the adapter's
    /// preferred matmul kernel.
    pub fn new(
        gpu: &Gpu,
        variant: AttentionVariant,
        batch: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<Attention> {
        let matmul = gpu.choices().matmul;
        Attention::with_matmul(gpu, variant, matmul, batch, tokens, heads, head_dim)
    }

    /// `new` with the products' matmul kernel given (it falls back to the tiled kernel for a
    /// shape the given one cannot run).
    pub fn with_matmul(
        gpu: &Gpu,
        variant: AttentionVariant,
        matmul: MatmulVariant,
        batch: usize,
        tokens: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<Attention> {
        let padded = tokens.div_ceil(4) * 4;
        // The row softmax runs up to 3 T + Tp loop steps per invocation (attention_softmax);
        // no split shortens a row.
        if variant == AttentionVariant::Matmul {
            check_loop_steps(
                "attention",
                &format!("{tokens} tokens (a row softmax)"),
                3 * tokens + padded,
                "use smaller input images",
            )?;
        }
        let z = batch * heads;
        let scratch = match variant {
            AttentionVariant::Fused => None,
            AttentionVariant::Matmul => Some(Scratch {
                q: gpu.zeros("attention q", &[z, tokens, head_dim])?,
                kt: gpu.zeros("attention k^T", &[z, head_dim, padded])?,
                v: gpu.zeros("attention v", &[z, padded, head_dim])?,
                s: gpu.zeros("attention scores", &[z, tokens, padded])?,
                o: gpu.zeros("attention heads out", &[z, tokens, head_dim])?,
            }),
        };
        Ok(Attention {
            variant,
            matmul,
            batch,
            tokens,
            heads,
            head_dim,
            padded,
            scratch,
        })
    }

    pub fn variant(&self) -> AttentionVariant {
        self.variant
    }

    /// The row softmax of the scores `s` [Z, T, Tp], in place. Where the products run the
    /// matmul that reads textures, so does the softmax (`attention_softmax_texture` reads a
    /// texture copy of the scores); else, and over the texture limits, `attention_softmax`.
    fn softmax(&self, gpu: &Gpu, s: &Tensor) -> Result<Dispatch> {
        let (z, t, tp) = (self.batch * self.heads, self.tokens, self.padded);
        let meta = SoftmaxMeta {
            rows: (z * t) as u32,
            tokens: t as u32,
            padded: tp as u32,
            scale: 1.0 / (self.head_dim as f32).sqrt(),
        };
        let groups = grid(gpu, (z * t).div_ceil(64));
        let copy = self
            .matmul
            .reads_textures()
            .then(|| {
                let format = wgpu::TextureFormat::Rgba32Float;
                TextureCopy::to_scratch(gpu, "attention scores", s, z * t * tp, format)
            })
            .flatten();
        let Some(copy) = copy else {
            return Dispatch::new(gpu, "attention_softmax", &[], &meta, &[s], groups);
        };
        Dispatch::with_texture_copy(
            gpu,
            "attention_softmax_texture",
            &[],
            &meta,
            copy,
            1,
            &[s],
            groups,
        )
    }

    /// Whether the layout changes read texture copies (`attention_heads_texture`,
    /// `attention_merge_texture`): where the products run the matmul that reads textures, for
    /// head_dim % 4 == 0 and a row's H * (1 + dh / 4) loop steps within `LOOP_BUDGET`.
    fn layout_from_textures(&self) -> bool {
        self.matmul.reads_textures()
            && self.head_dim.is_multiple_of(4)
            && self.heads * (1 + self.head_dim / 4) <= LOOP_BUDGET
    }

    /// q, k^T and v per head from `qkv` [B, T, 3, H, dh] into the scratch tensors, by
    /// `attention_heads_texture` where `layout_from_textures` and the copy fits the texture
    /// limits, else `attention_heads`.
    fn heads(&self, gpu: &Gpu, qkv: &Tensor, sc: &Scratch) -> Result<Dispatch> {
        let (b, t, h, dh, tp) = (
            self.batch,
            self.tokens,
            self.heads,
            self.head_dim,
            self.padded,
        );
        let z = b * h;
        let meta = HeadsMeta {
            tokens: t as u32,
            padded: tp as u32,
            heads: h as u32,
            head_dim: dh as u32,
            items: z as u32,
            _pad: [0; 3],
        };
        let outputs = [&sc.q, &sc.kt, &sc.v];
        let copy = self
            .layout_from_textures()
            .then(|| {
                let format = wgpu::TextureFormat::Rgba32Float;
                TextureCopy::to_scratch(gpu, "attention qkv", qkv, b * t * 3 * h * dh, format)
            })
            .flatten();
        let Some(copy) = copy else {
            let mut tensors = vec![qkv];
            tensors.extend(outputs);
            let groups = grid(gpu, (z * tp * dh).div_ceil(64));
            return Dispatch::new(gpu, "attention_heads", &[], &meta, &tensors, groups);
        };
        let groups = grid(gpu, (b * tp).div_ceil(8));
        Dispatch::with_texture_copy(
            gpu,
            "attention_heads_texture",
            &[],
            &meta,
            copy,
            0,
            &outputs,
            groups,
        )
    }

    /// The per-head outputs `o` [B * H, T, dh] back to the token stream `out` [B, T, H * dh],
    /// by `attention_merge_texture` where `layout_from_textures` and the copy fits the texture
    /// limits, else `attention_merge`.
    fn merge(&self, gpu: &Gpu, o: &Tensor, out: &Tensor) -> Result<Dispatch> {
        let (b, t, h, dh) = (self.batch, self.tokens, self.heads, self.head_dim);
        let total = b * t * h * dh;
        let meta = MergeMeta {
            tokens: t as u32,
            heads: h as u32,
            head_dim: dh as u32,
            total: total as u32,
        };
        let copy = self
            .layout_from_textures()
            .then(|| {
                let format = wgpu::TextureFormat::Rgba32Float;
                TextureCopy::to_scratch(gpu, "attention heads out", o, total, format)
            })
            .flatten();
        let Some(copy) = copy else {
            let groups = grid(gpu, total.div_ceil(64));
            return Dispatch::new(gpu, "attention_merge", &[], &meta, &[o, out], groups);
        };
        let groups = grid(gpu, (b * t).div_ceil(8));
        Dispatch::with_texture_copy(
            gpu,
            "attention_merge_texture",
            &[],
            &meta,
            copy,
            0,
            &[out],
            groups,
        )
    }

    /// The kernels of one layer: `out[B, T, H*dh]` = softmax(q k^T / sqrt(dh)) v per head,
    /// from `qkv` [B, T, 3, H, dh].
    pub fn dispatches(&self, gpu: &Gpu, qkv: &Tensor, out: &Tensor) -> Result<Vec<Dispatch>> {
        let (b, t, h, dh) = (self.batch, self.tokens, self.heads, self.head_dim);
        let Some(sc) = &self.scratch else {
            return Ok(vec![attention(gpu, qkv, b, t, h, dh, out)?]);
        };
        const OP: &str = "attention";
        check_len(OP, "qkv", qkv, b * t * 3 * h * dh)?;
        check_len(OP, "out", out, b * t * h * dh)?;
        let (z, tp) = (b * h, self.padded);
        let heads = self.heads(gpu, qkv, sc)?;
        let products = |a: &Tensor, a_item: usize, bm: &Tensor, (k, n): (usize, usize), o| {
            matmul_batched(
                gpu,
                runnable(gpu, self.matmul, n),
                a,
                k,
                bm,
                (k, n),
                o,
                t,
                Epilogue::default(),
                Batch {
                    count: z,
                    a_stride: a_item,
                    b_stride: k * n,
                },
            )
        };
        // Scores q k^T [T, Tp] per head; the scale is applied inside the softmax.
        let scores = products(&sc.q, t * dh, &sc.kt, (dh, tp), &sc.s)?;
        let softmax = self.softmax(gpu, &sc.s)?;
        // p v [T, dh] per head (the padded keys' values are zero).
        let weighted = products(&sc.s, t * tp, &sc.v, (tp, dh), &sc.o)?;
        let merge = self.merge(gpu, &sc.o, out)?;
        Ok(vec![heads, scores, softmax, weighted, merge])
    }
}
