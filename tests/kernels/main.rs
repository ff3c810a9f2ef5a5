//! Every kernel against a plain Rust reference, on random shapes that include sizes which are
//! not multiples of the tile, vector or workgroup size.

#[path = "../support/mod.rs"]
mod support;

mod conv;
mod limits;
mod loop_budget;
mod matmul;

use sparsescope::gpu::ops;
use sparsescope::gpu::{Plan, shaders};
use support::{Rng, assert_close, gpu};

#[test]
fn every_registered_kernel_compiles() {
    let gpu = gpu();
    let (mut compiled, mut with_f16) = (0, 0);
    for name in shaders::names() {
        // Subgroup kernels exist only where the adapter has subgroups; the ops route around
        // them elsewhere (GL), so they are compiled where they can run.
        if name.ends_with("_subgroup") && !gpu.has_subgroups() {
            continue;
        }
        gpu.pipeline(name, &[]).unwrap_or_else(|e| panic!("{e}"));
        compiled += 1;
        if shaders::reads_weights(name) {
            gpu.pipeline_of(name, &[], true)
                .unwrap_or_else(|e| panic!("{name} with f16 weights: {e}"));
            with_f16 += 1;
        }
    }
    assert!(compiled >= 10, "only {compiled} kernels compiled");
    // matmul (2 variants), conv2d (2), depthwise_conv2d.
    assert!(
        with_f16 >= 5,
        "only {with_f16} kernels compiled with f16 weights"
    );
}

#[test]
fn layernorm_variants_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    // Odd widths only the workgroup kernel takes; widths % 4 == 0 both take; row counts around
    // the per-row kernel's 8 rows per workgroup.
    let shapes = [
        (1, 1),
        (3, 7),
        (17, 192),
        (5, 385),
        (70000, 3),
        (1, 4),
        (9, 388),
        (16, 768),
        (70001, 8),
    ];
    for variant in ops::LayernormVariant::ALL {
        for &(rows, cols) in &shapes {
            let x: Vec<f32> = rng.vec(rows * cols, -3.0, 5.0);
            let w = rng.vec(cols, 0.5, 1.5);
            let b = rng.vec(cols, -0.2, 0.2);
            let eps = 1e-6;
            let tx = gpu.upload("x", &[rows, cols], &x).unwrap();
            let tw = gpu.upload("w", &[cols], &w).unwrap();
            let tb = gpu.upload("b", &[cols], &b).unwrap();
            let out = gpu.zeros("out", &[rows, cols]).unwrap();
            let what = format!("layernorm {variant:?} {rows}x{cols}");
            let dispatch = ops::layernorm_with(&gpu, variant, &tx, &tw, &tb, eps, &out);
            if let Some(why) = variant.unsupported(cols) {
                let err = dispatch
                    .err()
                    .unwrap_or_else(|| panic!("{what}: ran although {why}"));
                assert!(err.to_string().contains(&why), "{what}: {err}");
                continue;
            }
            let dispatch = dispatch.unwrap();
            // Every shape here fits the texture limits: no silent fallback to the buffer kernel.
            if variant == ops::LayernormVariant::RowsTexture {
                assert_eq!(dispatch.kernel, "layernorm_rows_texture", "{what}");
            }
            let mut plan = Plan::default();
            plan.push(dispatch);
            plan.run(&gpu).unwrap();
            let got: Vec<f32> = gpu.read(&out).unwrap();
            let want = layernorm_reference(&x, &w, &b, cols, eps);
            assert_close(&what, &got, &want, 2e-5, 1e-5);
        }
    }
    // The adapter's pick: a per-row kernel on CPU adapters where the width allows, reading
    // textures where the matmul does.
    let want = if !gpu.is_cpu() {
        ops::LayernormVariant::Workgroup
    } else if gpu.choices().reads_textures() {
        ops::LayernormVariant::RowsTexture
    } else {
        ops::LayernormVariant::Rows
    };
    assert_eq!(ops::LayernormVariant::pick(&gpu, 768), want);
    assert_eq!(
        ops::LayernormVariant::pick(&gpu, 385),
        ops::LayernormVariant::Workgroup
    );
}

/// LayerNorm of each row of `x` (rows of `cols`) in f64: biased variance, affine `w`, `b`.
pub(crate) fn layernorm_reference(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    cols: usize,
    eps: f32,
) -> Vec<f32> {
    let mut want = vec![0.0; x.len()];
    for (row, out) in x.chunks(cols).zip(want.chunks_mut(cols)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        for c in 0..cols {
            out[c] = ((row[c] as f64 - mean) / (var + eps as f64).sqrt() * w[c] as f64
                + b[c] as f64) as f32;
        }
    }
    want
}

/// softmax(q k^T / sqrt(dh)) v per image and head, in f64, from qkv [B, T, 3, H, dh].
pub(crate) fn attention_reference(
    qkv: &[f32],
    batch: usize,
    tokens: usize,
    heads: usize,
    dh: usize,
) -> Vec<f32> {
    let width = heads * dh;
    let mut want = vec![0.0; batch * tokens * width];
    let at = |b: usize, t: usize, part: usize, h: usize, d: usize| {
        qkv[(b * tokens + t) * 3 * width + part * width + h * dh + d] as f64
    };
    for b in 0..batch {
        for h in 0..heads {
            for t in 0..tokens {
                let scores: Vec<f64> = (0..tokens)
                    .map(|j| {
                        (0..dh)
                            .map(|d| at(b, t, 0, h, d) * at(b, j, 1, h, d))
                            .sum::<f64>()
                            / (dh as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..dh {
                    let v: f64 = (0..tokens).map(|j| e[j] * at(b, j, 2, h, d)).sum::<f64>() / sum;
                    want[(b * tokens + t) * width + h * dh + d] = v as f32;
                }
            }
        }
    }
    want
}

#[test]
fn attention_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    for &(batch, tokens, heads, dh) in &[
        (1, 1, 1, 1),
        (2, 17, 3, 64),
        (1, 70, 2, 13),
        (3, 5, 4, 96),
        (2, 197, 3, 64),
    ] {
        let width = heads * dh;
        let qkv = rng.vec(batch * tokens * 3 * width, -2.0, 2.0);
        let tq = gpu
            .upload("qkv", &[batch, tokens, 3 * width], &qkv)
            .unwrap();
        let out = gpu.zeros("out", &[batch, tokens, width]).unwrap();
        let want = attention_reference(&qkv, batch, tokens, heads, dh);
        // The matmul path with each matmul kernel (its softmax reads a texture copy of the
        // scores exactly where the products use the matmul from textures, and so do its
        // layout changes where head_dim % 4 == 0).
        let runs = ops::MatmulVariant::ALL
            .map(|m| (ops::AttentionVariant::Matmul, m))
            .into_iter()
            .chain([(ops::AttentionVariant::Fused, ops::MatmulVariant::Tiled)]);
        for (variant, matmul) in runs {
            gpu.write(&out, &vec![f32::NAN; batch * tokens * width]);
            let att = ops::Attention::with_matmul(&gpu, variant, matmul, batch, tokens, heads, dh)
                .unwrap();
            let dispatches = att.dispatches(&gpu, &tq, &out).unwrap();
            if variant == ops::AttentionVariant::Matmul {
                let texture_softmax = matmul == ops::MatmulVariant::Texture;
                assert!(
                    dispatches.iter().any(|d| d.kernel
                        == if texture_softmax {
                            "attention_softmax_texture"
                        } else {
                            "attention_softmax"
                        }),
                    "{matmul:?}: softmax kernel"
                );
                // The layout changes read texture copies where the softmax does and head_dim
                // allows vec4.
                let texture_layout = texture_softmax && dh % 4 == 0;
                for kernel in ["attention_heads", "attention_merge"] {
                    let want = if texture_layout {
                        format!("{kernel}_texture")
                    } else {
                        kernel.to_string()
                    };
                    assert!(
                        dispatches.iter().any(|d| d.kernel == want),
                        "{matmul:?}, head_dim {dh}: {want} did not run"
                    );
                }
            }
            let mut plan = Plan::default();
            plan.push_all(dispatches);
            plan.run(&gpu).unwrap();
            let got: Vec<f32> = gpu.read(&out).unwrap();
            assert_close(
                &format!(
                    "attention {variant:?} ({matmul:?}) b={batch} t={tokens} h={heads} dh={dh}"
                ),
                &got,
                &want,
                1e-5,
                1e-5,
            );
        }
    }
}

#[test]
fn patch_embedding_kernels_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(4);
    let (b, c, h, w, p, d) = (2, 3, 30, 45, 14, 5);
    let img = rng.vec(b * c * h * w, -1.0, 1.0);
    let (gh, gw) = (h / p, w / p);
    let timg = gpu.upload("img", &[b, c, h, w], &img).unwrap();
    let cols = gpu.zeros("cols", &[b * gh * gw, c * p * p]).unwrap();
    let mut plan = Plan::default();
    plan.push(ops::patch_im2col(&gpu, &timg, p, &cols).unwrap());
    // Tokens: treat the first d columns of each patch row as its "embedding".
    let patches: Vec<f32> = rng.vec(b * gh * gw * d, -1.0, 1.0);
    let cls = rng.vec(d, -1.0, 1.0);
    let pos = rng.vec((gh * gw + 1) * d, -1.0, 1.0);
    let tp = gpu.upload("patches", &[b * gh * gw, d], &patches).unwrap();
    let tc = gpu.upload("cls", &[d], &cls).unwrap();
    let tpos = gpu.upload("pos", &[gh * gw + 1, d], &pos).unwrap();
    let tokens = gpu.zeros("tokens", &[b, gh * gw + 1, d]).unwrap();
    plan.push(ops::vit_tokens(&gpu, &tp, &tc, &tpos, b, &tokens).unwrap());
    plan.run(&gpu).unwrap();

    let got: Vec<f32> = gpu.read(&cols).unwrap();
    let mut want = Vec::new();
    for bi in 0..b {
        for py in 0..gh {
            for px in 0..gw {
                for ci in 0..c {
                    for ky in 0..p {
                        for kx in 0..p {
                            want.push(img[((bi * c + ci) * h + py * p + ky) * w + px * p + kx]);
                        }
                    }
                }
            }
        }
    }
    assert_close("patch_im2col", &got, &want, 0.0, 0.0);

    let got: Vec<f32> = gpu.read(&tokens).unwrap();
    let mut want = Vec::new();
    for bi in 0..b {
        for t in 0..=gh * gw {
            for di in 0..d {
                let base = if t == 0 {
                    cls[di]
                } else {
                    patches[(bi * gh * gw + t - 1) * d + di]
                };
                want.push(base + pos[t * d + di]);
            }
        }
    }
    assert_close("vit_tokens", &got, &want, 0.0, 0.0);
}
