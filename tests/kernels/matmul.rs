//! Every matmul variant against a plain f64 Rust reference, whatever variant `matmul()` would
//! pick on the adapter at hand (CI runs only lavapipe, which picks the subgroup kernel).

use sparsescope::gpu::ops::{self, Act, Epilogue, MatmulVariant};
use sparsescope::gpu::{Gpu, Plan, Tensor};

use crate::support::{Rng, assert_close, gpu};

const ACTS: [Act; 6] = [
    Act::None,
    Act::Relu,
    Act::Relu6,
    Act::Gelu,
    Act::Silu,
    Act::GeluTanh,
];

/// Every combination of (bias, scale, residual).
const FLAGS: [(bool, bool, bool); 8] = [
    (false, false, false),
    (true, false, false),
    (false, true, false),
    (false, false, true),
    (true, true, false),
    (true, false, true),
    (false, true, true),
    (true, true, true),
];

#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_reference(
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
    scale: Option<&[f32]>,
    res: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for kk in 0..k {
                acc += a[i * a_stride + kk] as f64 * b[kk * n + j] as f64;
            }
            let mut v = acc as f32;
            if let Some(bias) = bias {
                v += bias[j];
            }
            if let Some(scale) = scale {
                v *= scale[j];
            }
            if let Some(res) = res {
                v += res[i * n + j];
            }
            out[i * n + j] = act.apply(v);
        }
    }
    out
}

/// The variants to test on this adapter. The subgroup kernel must be available on lavapipe
/// (CI's adapter); elsewhere (a GL adapter) its absence is reported, not hidden.
pub(super) fn variants(gpu: &Gpu) -> Vec<MatmulVariant> {
    let mut out = vec![MatmulVariant::Tiled];
    match MatmulVariant::Subgroup.unsupported(gpu, 4) {
        None => out.extend([MatmulVariant::Subgroup, MatmulVariant::Texture]),
        Some(why) => {
            assert!(
                !(gpu.is_cpu() && gpu.info.backend == wgpu::Backend::Vulkan),
                "lavapipe must run the subgroup matmul: {why}"
            );
            eprintln!("NOTE: matmul_subgroup not tested on this adapter: {why}");
        }
    }
    out
}

/// How B (or a conv kernel) is stored: f32, or f16 as `--f16-weights` stores weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Storage {
    F32,
    F16,
}

impl Storage {
    pub(super) fn upload(self, gpu: &Gpu, shape: &[usize], data: &[f32]) -> Tensor {
        match self {
            Storage::F32 => gpu.upload("weights", shape, data),
            Storage::F16 => gpu.upload_f16("weights", shape, data),
        }
        .unwrap()
    }

    /// The values a kernel reads from `data` stored this way (f16-rounded for F16), for the
    /// reference.
    pub(super) fn seen(self, data: &[f32]) -> Vec<f32> {
        match self {
            Storage::F32 => data.to_vec(),
            Storage::F16 => data
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect(),
        }
    }
}

/// One case: random A (rows at `a_stride`), B, bias, scale, residual; run `variant` with each
/// of `flags` (act chosen per flag combination by `act_of`) and compare with the reference.
/// With B stored as f16 the reference takes the f16-rounded B, so the tolerance is the same.
#[allow(clippy::too_many_arguments)]
fn check_case(
    gpu: &Gpu,
    rng: &mut Rng,
    variant: MatmulVariant,
    storage: Storage,
    m: usize,
    k: usize,
    n: usize,
    a_stride: usize,
    flags: &[(bool, bool, bool)],
    act_of: impl Fn(usize) -> Act,
) {
    let a = rng.vec((m.max(1) - 1) * a_stride + k, -1.0, 1.0);
    let b = storage.seen(&rng.vec(k * n, -1.0, 1.0));
    let tb = storage.upload(gpu, &[k, n], &b);
    let bias = rng.vec(n, -0.5, 0.5);
    let scale = rng.vec(n, 0.1, 1.0);
    let res = rng.vec(m * n, -1.0, 1.0);
    let ta = gpu.upload("a", &[a.len()], &a).unwrap();
    let tbias = gpu.upload("bias", &[n], &bias).unwrap();
    let tscale = gpu.upload("scale", &[n], &scale).unwrap();
    let tres = gpu.upload("res", &[m, n], &res).unwrap();
    // A guard region past out's M x N elements must stay untouched.
    const GUARD: usize = 64;
    let out = gpu.zeros("out", &[m * n + GUARD]).unwrap();
    for (i, &(with_bias, with_scale, with_res)) in flags.iter().enumerate() {
        let act = act_of(i);
        let epi = Epilogue {
            bias: with_bias.then_some(&tbias),
            scale: with_scale.then_some(&tscale),
            residual: with_res.then_some(&tres),
            act,
        };
        // NaN marks every output the kernel must write: a skipped store cannot pass.
        let mut init = vec![f32::NAN; m * n];
        init.extend([7.0; GUARD]);
        gpu.write(&out, &init);
        let mut plan = Plan::default();
        plan.push(ops::matmul_with(gpu, variant, &ta, a_stride, &tb, &out, m, epi).unwrap());
        plan.run(gpu).unwrap();
        let mut got: Vec<f32> = gpu.read(&out).unwrap();
        let guard = got.split_off(m * n);
        let want = matmul_reference(
            &a,
            a_stride,
            &b,
            m,
            k,
            n,
            with_bias.then_some(&bias[..]),
            with_scale.then_some(&scale[..]),
            with_res.then_some(&res[..]),
            act,
        );
        let what = format!(
            "{variant:?} B {storage:?} m={m} k={k} n={n} stride={a_stride} act={act:?} bias={with_bias} scale={with_scale} res={with_res}"
        );
        assert_close(&what, &got, &want, 1e-5 * (k as f32).sqrt(), 1e-5);
        assert_close(&format!("{what}: guard"), &guard, &[7.0; GUARD], 0.0, 0.0);
    }
}

/// `check_case` on every (m, k, n) of `shapes` with every variant (N rounded up to a multiple
/// of 4 for the subgroup kernel, which reads B as vec4 and refuses other N, tested below),
/// every epilogue combination, activations varying by case, and A's rows padded on odd cases.
fn check_shapes(gpu: &Gpu, rng: &mut Rng, shapes: &[(usize, usize, usize)], storage: Storage) {
    for variant in variants(gpu) {
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            let n = match variant {
                MatmulVariant::Subgroup | MatmulVariant::Texture => n.div_ceil(4) * 4,
                MatmulVariant::Tiled => n,
            };
            let a_stride = if case % 2 == 0 { k } else { k + 1 + case % 5 };
            check_case(gpu, rng, variant, storage, m, k, n, a_stride, &FLAGS, |i| {
                ACTS[(case + i) % ACTS.len()]
            });
        }
    }
}

#[test]
fn matmul_variants_match_reference_on_odd_shapes() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    // (m, k, n): edge cases first (M = 1, K = 1, K = 0, K % 8 != 0 around the unrolled block,
    // M not a multiple of the 24 or 64 rows and N not a multiple of the 32 or 64 columns of a
    // workgroup), then random shapes.
    let mut shapes: Vec<(usize, usize, usize)> = vec![
        (1, 1, 4),
        (1, 1, 1),
        (1, 7, 12),
        (3, 0, 8),
        (7, 13, 5),
        (9, 8, 36),
        (64, 64, 64),
        (65, 33, 130),
        (130, 70, 3),
        (17, 192, 96),
        (13, 17, 100),
        (24, 8, 32),
        (49, 40, 68),
    ];
    for _ in 0..10 {
        let m = 1 + rng.below(80);
        let k = 1 + rng.below(150);
        let n = 1 + rng.below(140);
        shapes.push((m, k, n));
    }
    check_shapes(&gpu, &mut rng, &shapes, Storage::F32);
}

#[test]
fn matmul_variants_read_f16_weights() {
    let gpu = gpu();
    let mut rng = Rng::new(8);
    // Odd element counts of B (7 x 5 = 35 halves) end in a padded 4-byte word.
    let shapes = [
        (1, 1, 4),
        (7, 13, 5),
        (9, 8, 36),
        (65, 33, 130),
        (49, 40, 68),
        (50, 97, 44),
    ];
    check_shapes(&gpu, &mut rng, &shapes, Storage::F16);
}

#[test]
fn matmul_variants_apply_every_activation_with_every_epilogue() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    // matmul_texture shares matmul_subgroup's body and epilogue (only its loads differ, and the
    // other tests check those with every epilogue flag): each activation is a pipeline of its
    // own, so testing it here again would double the compile time for no new code.
    for variant in variants(&gpu)
        .into_iter()
        .filter(|v| *v != MatmulVariant::Texture)
    {
        for act in ACTS {
            check_case(
                &gpu,
                &mut rng,
                variant,
                Storage::F32,
                11,
                21,
                44,
                23,
                &FLAGS,
                |_| act,
            );
        }
    }
}

/// Batched matmuls (attention's per-head products): item z reads A and B at its own offsets,
/// shares bias, and writes out[z] and reads residual[z]; every item against the reference.
#[test]
fn batched_matmul_matches_reference_per_item() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for variant in variants(&gpu) {
        for &(z, m, k, n, a_stride) in
            &[(3, 29, 13, 20, 13), (5, 7, 64, 8, 70), (2, 50, 33, 36, 40)]
        {
            let a_item = (m - 1) * a_stride + k + 3;
            let b_item = k * n + 4;
            let a = rng.vec(z * a_item, -1.0, 1.0);
            let b = rng.vec(z * b_item, -1.0, 1.0);
            let bias = rng.vec(n, -0.5, 0.5);
            let res = rng.vec(z * m * n, -1.0, 1.0);
            let ta = gpu.upload("a", &[a.len()], &a).unwrap();
            let tb = gpu.upload("b", &[b.len()], &b).unwrap();
            let tbias = gpu.upload("bias", &[n], &bias).unwrap();
            let tres = gpu.upload("res", &[z * m * n], &res).unwrap();
            let out = gpu.zeros("out", &[z * m * n]).unwrap();
            gpu.write(&out, &vec![f32::NAN; z * m * n]);
            let epi = Epilogue {
                bias: Some(&tbias),
                scale: None,
                residual: Some(&tres),
                act: Act::Relu,
            };
            let batch = ops::Batch {
                count: z,
                a_stride: a_item,
                b_stride: b_item,
            };
            let mut plan = Plan::default();
            plan.push(
                ops::matmul_batched(
                    &gpu,
                    variant,
                    &ta,
                    a_stride,
                    &tb,
                    (k, n),
                    &out,
                    m,
                    epi,
                    batch,
                )
                .unwrap(),
            );
            plan.run(&gpu).unwrap();
            let got: Vec<f32> = gpu.read(&out).unwrap();
            for i in 0..z {
                let want = matmul_reference(
                    &a[i * a_item..],
                    a_stride,
                    &b[i * b_item..(i * b_item + k * n)],
                    m,
                    k,
                    n,
                    Some(&bias),
                    None,
                    Some(&res[i * m * n..(i + 1) * m * n]),
                    Act::Relu,
                );
                assert_close(
                    &format!("{variant:?} batch item {i} of {z}: m={m} k={k} n={n}"),
                    &got[i * m * n..(i + 1) * m * n],
                    &want,
                    1e-5 * (k as f32).sqrt(),
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn matmul_subgroup_folds_large_grids() {
    // ceil(M / 24) = 65,537 subgroup workgroups (24 rows each) exceed the 65,535 limit of one
    // grid dimension: the kernel must recover its block from a 2-D grid and skip the padding
    // workgroups.
    let gpu = gpu();
    let mut rng = Rng::new(6);
    for variant in variants(&gpu) {
        let (m, k, n) = (24 * 65_537 - 3, 2, 4);
        check_case(
            &gpu,
            &mut rng,
            variant,
            Storage::F32,
            m,
            k,
            n,
            k,
            &[(true, false, true)],
            |_| Act::Relu,
        );
    }
}

#[test]
fn matmul_routes_by_adapter_and_shape() {
    let gpu = gpu();
    let sub = MatmulVariant::Subgroup.unsupported(&gpu, 768).is_none();
    // The tuned choice where it can run (on lavapipe one of the two subgroup kernels, timed).
    let preferred = ops::preferred_variant(&gpu, 768);
    assert_eq!(preferred, gpu.choices().matmul);
    if gpu.is_cpu() && sub {
        assert!(preferred.is_subgroup(), "{preferred:?}");
    }
    // N % 4 != 0 cannot be read as vec4: matmul() routes it to the tiled kernel ...
    assert_eq!(ops::preferred_variant(&gpu, 6), MatmulVariant::Tiled);
    let mut rng = Rng::new(7);
    let (m, k, n) = (5, 9, 6);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let ta = gpu.upload("a", &[m, k], &a).unwrap();
    let tb = gpu.upload("b", &[k, n], &b).unwrap();
    let out = gpu.zeros("out", &[m, n]).unwrap();
    let mut plan = Plan::default();
    plan.push(ops::matmul(&gpu, &ta, k, &tb, &out, m, Epilogue::default()).unwrap());
    plan.run(&gpu).unwrap();
    let want = matmul_reference(&a, k, &b, m, k, n, None, None, None, Act::None);
    assert_close(
        "matmul() with N = 6",
        &gpu.read(&out).unwrap(),
        &want,
        1e-5 * 3.0,
        1e-5,
    );
    // ... and the subgroup kernel, asked for explicitly, refuses it with a reason.
    if sub {
        let err = ops::matmul_with(
            &gpu,
            MatmulVariant::Subgroup,
            &ta,
            k,
            &tb,
            &out,
            m,
            Epilogue::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("N = 6 is not a multiple of 4"),
            "{err}"
        );
    }
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let gpu = gpu();
    let a = gpu.zeros("a", &[4, 8]).unwrap();
    let b = gpu.zeros("b", &[8, 4]).unwrap();
    let small = gpu.zeros("out", &[3, 4]).unwrap();
    for variant in variants(&gpu) {
        let err =
            ops::matmul_with(&gpu, variant, &a, 8, &b, &small, 4, Epilogue::default()).unwrap_err();
        assert!(err.to_string().contains("out holds 12 elements"), "{err}");
        let err =
            ops::matmul_with(&gpu, variant, &a, 4, &b, &small, 1, Epilogue::default()).unwrap_err();
        assert!(err.to_string().contains("stride 4 is below K = 8"), "{err}");
        let err =
            ops::matmul_with(&gpu, variant, &a, 8, &b, &small, 5, Epilogue::default()).unwrap_err();
        assert!(err.to_string().contains("A holds 32 elements"), "{err}");
    }
}
