//! Work larger than one launch is split, not refused: with the adapter's limits lowered (a
//! 64 KiB storage binding, 8 workgroups per grid dimension), a matmul, LayerNorm and attention whose
//! tensors and grids exceed them run as several launches over windows of their tensors and
//! still match the references; work that cannot be split names the limit.

use sparsescope::error::Error;
use sparsescope::gpu::ops::{self, Act, Epilogue, MatmulVariant};
use sparsescope::gpu::{Gpu, GpuOptions, LowerLimits, Plan};

use super::matmul::{matmul_reference, variants};
use crate::support::{Rng, assert_close};

const BINDING: u64 = 64 << 10;
const GROUPS: u32 = 8;

fn small_gpu() -> Gpu {
    let gpu = Gpu::new(&GpuOptions {
        lower_limits: LowerLimits {
            max_storage_buffer_binding_size: Some(BINDING),
            max_compute_workgroups_per_dimension: Some(GROUPS),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("kernel tests need a wgpu adapter: {e}"));
    assert_eq!(gpu.limits.max_storage_buffer_binding_size, BINDING);
    assert_eq!(gpu.limits.max_compute_workgroups_per_dimension, GROUPS);
    gpu
}

#[test]
fn matmul_splits_over_binding_and_grid_limits() {
    let gpu = small_gpu();
    let mut rng = Rng::new(11);
    // A (301 x 70 at stride 73: 88 KB), out and residual (301 x 132: 159 KB) exceed the 64 KiB
    // binding; the subgroup kernel's 5 x 38 workgroups exceed 8 x 8.
    let (m, k, n, a_stride) = (301, 70, 132, 73);
    let a = rng.vec((m - 1) * a_stride + k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let bias = rng.vec(n, -0.5, 0.5);
    let res = rng.vec(m * n, -1.0, 1.0);
    let ta = gpu.upload("a", &[a.len()], &a).unwrap();
    let tb = gpu.upload("b", &[k, n], &b).unwrap();
    let tbias = gpu.upload("bias", &[n], &bias).unwrap();
    let tres = gpu.upload("res", &[m, n], &res).unwrap();
    let out = gpu.zeros("out", &[m, n]).unwrap();
    for variant in variants(&gpu) {
        gpu.write(&out, &vec![f32::NAN; m * n]);
        let epi = Epilogue {
            bias: Some(&tbias),
            scale: None,
            residual: Some(&tres),
            act: Act::Gelu,
        };
        let d = ops::matmul_with(&gpu, variant, &ta, a_stride, &tb, &out, m, epi).unwrap();
        assert!(
            d.launches() > 1,
            "{variant:?}: not split ({} launch)",
            d.launches()
        );
        let launches = d.launches();
        let mut plan = Plan::default();
        plan.push(d);
        plan.run(&gpu).unwrap();
        let got: Vec<f32> = gpu.read(&out).unwrap();
        let want = matmul_reference(
            &a,
            a_stride,
            &b,
            m,
            k,
            n,
            Some(&bias),
            None,
            Some(&res),
            Act::Gelu,
        );
        let what = format!("{variant:?} split into {launches} launches");
        assert_close(&what, &got, &want, 1e-5 * (k as f32).sqrt(), 1e-5);
    }
}

#[test]
fn layernorm_splits_over_binding_and_grid_limits() {
    let gpu = small_gpu();
    let mut rng = Rng::new(12);
    // 300 rows of 100: 120 KB per tensor; 300 workgroups of the workgroup kernel over the 8 x 8
    // grid; 2,500 rows of 4 for the per-row kernel: 313 workgroups of 8 rows.
    for (variant, rows, cols) in [
        (ops::LayernormVariant::Workgroup, 300, 100),
        (ops::LayernormVariant::Rows, 300, 100),
        (ops::LayernormVariant::Rows, 2500, 4),
        // Over several launches the texture variant runs the buffer kernel.
        (ops::LayernormVariant::RowsTexture, 300, 100),
    ] {
        let x = rng.vec(rows * cols, -3.0, 5.0);
        let w = rng.vec(cols, 0.5, 1.5);
        let b = rng.vec(cols, -0.2, 0.2);
        let tx = gpu.upload("x", &[rows, cols], &x).unwrap();
        let tw = gpu.upload("w", &[cols], &w).unwrap();
        let tb = gpu.upload("b", &[cols], &b).unwrap();
        let out = gpu.zeros("out", &[rows, cols]).unwrap();
        gpu.write(&out, &vec![f32::NAN; rows * cols]);
        let d = ops::layernorm_with(&gpu, variant, &tx, &tw, &tb, 1e-6, &out).unwrap();
        assert!(d.launches() > 1, "{variant:?} {rows}x{cols}: not split");
        let launches = d.launches();
        let mut plan = Plan::default();
        plan.push(d);
        plan.run(&gpu).unwrap();
        let got: Vec<f32> = gpu.read(&out).unwrap();
        let want = crate::layernorm_reference(&x, &w, &b, cols, 1e-6);
        assert_close(
            &format!("layernorm {variant:?} {rows}x{cols} split into {launches} launches"),
            &got,
            &want,
            2e-5,
            1e-5,
        );
    }
}

#[test]
fn attention_splits_a_batch_over_binding_and_grid_limits() {
    let gpu = small_gpu();
    let mut rng = Rng::new(13);
    // 20 images of 7 tokens, 2 heads of 64: qkv 215 KB and out 72 KB exceed the 64 KiB
    // binding, and 20 images exceed the grid's 8 in its batch dimension.
    let (batch, tokens, heads, dh) = (20, 7, 2, 64);
    let width = heads * dh;
    let qkv = rng.vec(batch * tokens * 3 * width, -2.0, 2.0);
    let tq = gpu
        .upload("qkv", &[batch, tokens, 3 * width], &qkv)
        .unwrap();
    let out = gpu.zeros("out", &[batch, tokens, width]).unwrap();
    gpu.write(&out, &vec![f32::NAN; batch * tokens * width]);
    let d = ops::attention(&gpu, &tq, batch, tokens, heads, dh, &out).unwrap();
    let launches = d.launches();
    assert!(launches > 1, "not split");
    let mut plan = Plan::default();
    plan.push(d);
    plan.run(&gpu).unwrap();
    let got: Vec<f32> = gpu.read(&out).unwrap();
    let want = crate::attention_reference(&qkv, batch, tokens, heads, dh);
    let what = format!("attention split into {launches} launches");
    assert_close(&what, &got, &want, 1e-5, 1e-5);
}

#[test]
fn unsplittable_work_names_the_limit() {
    let gpu = small_gpu();
    // B (the weights, 200 x 100: 80 KB) cannot be split by rows of the output: the kernels
    // that bind it as a storage buffer refuse it and name the limit. (matmul_texture reads it
    // from a texture copy, which the binding limit does not bound.)
    let (m, k, n) = (4, 200, 100);
    let ta = gpu.zeros("a", &[m, k]).unwrap();
    let tb = gpu.zeros("b", &[k, n]).unwrap();
    let out = gpu.zeros("out", &[m, n]).unwrap();
    for variant in [MatmulVariant::Tiled, MatmulVariant::Subgroup] {
        if variant.unsupported(&gpu, n).is_some() {
            continue;
        }
        let err =
            ops::matmul_with(&gpu, variant, &ta, k, &tb, &out, m, Epilogue::default()).unwrap_err();
        assert!(matches!(err, Error::Limit { .. }), "{variant:?}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("binding") && msg.contains(&BINDING.to_string()),
            "{variant:?}: {msg}"
        );
    }
    // A single row wider than the binding cannot be split either.
    let wide = gpu.zeros("wide", &[1, 20_000]).unwrap();
    let wout = gpu.zeros("wout", &[1, 20_000]).unwrap();
    let ones = gpu.zeros("w", &[20_000]).unwrap();
    let err = ops::layernorm(&gpu, &wide, &ones, &ones, 1e-6, &wout).unwrap_err();
    assert!(matches!(err, Error::Limit { .. }), "{err:?}");
}
