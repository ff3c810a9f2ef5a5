//! Convolution, pooling and layout kernels against plain f64 Rust references written from the
//! PyTorch definitions (NCHW semantics, indexed in NHWC), on odd shapes: sizes that are not
//! multiples of the tile, strip, vector or workgroup size, strides 1 and 2, kernels 1 to 7,
//! dilation, groups, and symmetric, asymmetric and TF "SAME" padding.

use sparsescope::gpu::ops::conv::{
    self, ConvSpec, ConvVariant, conv_weight_layout, fold_batchnorm, same_padding, same_pads,
};
use sparsescope::gpu::ops::{Act, Epilogue, pool};
use sparsescope::gpu::{Gpu, Plan, Tensor};

use crate::matmul::Storage;
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

struct EpilogueData<'a> {
    bias: Option<&'a [f32]>,
    scale: Option<&'a [f32]>,
    res: Option<&'a [f32]>,
    act: Act,
}

/// PyTorch's Conv2d on NHWC `x` with a PyTorch-layout weight `[Cout, Cin/groups, kh, kw]`,
/// in f64, then the epilogue `act(scale * (acc + bias) + res)`.
fn conv_reference(x: &[f32], w: &[f32], s: &ConvSpec, epi: &EpilogueData) -> Vec<f32> {
    let (ho, wo) = s.output().unwrap();
    let [kh, kw] = s.kernel;
    let [top, _, left, _] = s.pads;
    let (cin_g, cout_g) = (s.cin / s.groups, s.cout / s.groups);
    let mut out = vec![0.0; s.batch * ho * wo * s.cout];
    for b in 0..s.batch {
        for oy in 0..ho {
            for ox in 0..wo {
                let row = (b * ho + oy) * wo + ox;
                for co in 0..s.cout {
                    let g = co / cout_g;
                    let mut acc = 0.0f64;
                    for ky in 0..kh {
                        let iy = (oy * s.stride + ky * s.dilation) as isize - top as isize;
                        if iy < 0 || iy >= s.height as isize {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = (ox * s.stride + kx * s.dilation) as isize - left as isize;
                            if ix < 0 || ix >= s.width as isize {
                                continue;
                            }
                            let pixel = (b * s.height + iy as usize) * s.width + ix as usize;
                            for ci in 0..cin_g {
                                let xv = x[pixel * s.cin + g * cin_g + ci] as f64;
                                let wv = w[((co * cin_g + ci) * kh + ky) * kw + kx] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    let mut v = acc as f32;
                    if let Some(bias) = epi.bias {
                        v += bias[co];
                    }
                    if let Some(scale) = epi.scale {
                        v *= scale[co];
                    }
                    if let Some(res) = epi.res {
                        v += res[row * s.cout + co];
                    }
                    out[row * s.cout + co] = epi.act.apply(v);
                }
            }
        }
    }
    out
}

pub(super) fn run(gpu: &Gpu, d: sparsescope::gpu::Dispatch) {
    let mut plan = Plan::default();
    plan.push(d);
    plan.run(gpu).unwrap();
}

/// The variants that can compute `spec` here. On lavapipe (CI's adapter) the subgroup kernel
/// must be among them whenever Cout / groups % 4 == 0; elsewhere its absence is reported.
fn variants(gpu: &Gpu, spec: &ConvSpec) -> Vec<ConvVariant> {
    let mut out = Vec::new();
    for v in ConvVariant::ALL {
        match v.unsupported(gpu, spec) {
            None => out.push(v),
            Some(why) => {
                let lavapipe = gpu.is_cpu() && gpu.info.backend == wgpu::Backend::Vulkan;
                if v == ConvVariant::Subgroup && (spec.cout / spec.groups).is_multiple_of(4) {
                    assert!(!lavapipe, "lavapipe must run the subgroup conv: {why}");
                    eprintln!("NOTE: conv2d_subgroup not tested on this adapter: {why}");
                }
            }
        }
    }
    out
}

/// Run every variant that can compute `spec` (and `conv2d()`'s own choice) with each of
/// `flags`, the kernel stored as `storage`, comparing with the reference (on the f16-rounded
/// kernel for f16 storage); returns the variants run.
fn check_conv(
    gpu: &Gpu,
    rng: &mut Rng,
    spec: &ConvSpec,
    storage: Storage,
    flags: &[(bool, bool, bool)],
    act_of: impl Fn(usize) -> Act,
) -> Vec<ConvVariant> {
    let (ho, wo) = spec.output().unwrap();
    let m = spec.batch * ho * wo;
    let n = spec.cout;
    let torch_shape = [n, spec.cin / spec.groups, spec.kernel[0], spec.kernel[1]];
    let x = rng.vec(spec.batch * spec.height * spec.width * spec.cin, -1.0, 1.0);
    let w = storage.seen(&rng.vec(torch_shape.iter().product(), -1.0, 1.0));
    let bias = rng.vec(n, -0.5, 0.5);
    let scale = rng.vec(n, 0.1, 1.0);
    let res = rng.vec(m * n, -1.0, 1.0);
    let tx = gpu
        .upload("x", &[spec.batch, spec.height, spec.width, spec.cin], &x)
        .unwrap();
    let hwio = conv_weight_layout(&w, torch_shape).unwrap();
    let tw = storage.upload(gpu, &[spec.gemm_k(), n], &hwio);
    let tbias = gpu.upload("bias", &[n], &bias).unwrap();
    let tscale = gpu.upload("scale", &[n], &scale).unwrap();
    let tres = gpu.upload("res", &[m, n], &res).unwrap();
    let out = gpu.zeros("out", &[m, n]).unwrap();
    let variants = variants(gpu, spec);
    let k = spec.gemm_k() as f32;
    for (i, &(with_bias, with_scale, with_res)) in flags.iter().enumerate() {
        let act = act_of(i);
        let epi = Epilogue {
            bias: with_bias.then_some(&tbias),
            scale: with_scale.then_some(&tscale),
            residual: with_res.then_some(&tres),
            act,
        };
        let want = conv_reference(
            &x,
            &w,
            spec,
            &EpilogueData {
                bias: with_bias.then_some(&bias[..]),
                scale: with_scale.then_some(&scale[..]),
                res: with_res.then_some(&res[..]),
                act,
            },
        );
        let runs = variants.iter().map(|&v| Some(v)).chain([None]);
        for variant in runs {
            // NaN marks every output the kernel must write: a skipped store cannot pass.
            gpu.write(&out, &vec![f32::NAN; m * n]);
            let d = match variant {
                Some(v) => conv::conv2d_with(gpu, v, &tx, &tw, spec, &out, epi),
                None => conv::conv2d(gpu, &tx, &tw, spec, &out, epi),
            }
            .unwrap();
            assert_eq!(d.flops, spec.flops());
            // The texture variants read textures here (small tensors, no fallback to buffers).
            if let Some(v @ (ConvVariant::Texture | ConvVariant::DepthwiseTexture)) = variant {
                assert!(d.kernel.ends_with("_texture"), "{v:?} ran {}", d.kernel);
            }
            run(gpu, d);
            let got: Vec<f32> = gpu.read(&out).unwrap();
            let what = format!(
                "conv2d {variant:?} weights {storage:?} {spec:?} act={act:?} bias={with_bias} scale={with_scale} res={with_res}"
            );
            assert_close(&what, &got, &want, 1e-5 * k.sqrt(), 1e-5);
        }
    }
    variants
}

/// `check_conv` on each case with four of the epilogue combinations and activations varying
/// by case; returns the variants run per case.
fn check_cases(
    gpu: &Gpu,
    rng: &mut Rng,
    cases: &[ConvSpec],
    storage: Storage,
) -> Vec<Vec<ConvVariant>> {
    cases
        .iter()
        .enumerate()
        .map(|(case, s)| {
            check_conv(gpu, rng, s, storage, &FLAGS[case % 4..case % 4 + 4], |i| {
                ACTS[(case + i) % ACTS.len()]
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn spec(
    [batch, height, width]: [usize; 3],
    [cin, cout]: [usize; 2],
    kernel: [usize; 2],
    stride: usize,
    dilation: usize,
    groups: usize,
    pads: [usize; 4],
) -> ConvSpec {
    ConvSpec {
        batch,
        height,
        width,
        cin,
        cout,
        kernel,
        stride,
        dilation,
        groups,
        pads,
    }
}

#[test]
fn conv2d_variants_match_reference_on_odd_geometries() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    let same = |s: ConvSpec| s.with_same_padding();
    let cases = [
        // ResNet stem: 7x7 stride 2, pad 3, 3 input channels (all in the K % 8 tail).
        spec([2, 17, 19], [3, 8], [7, 7], 2, 1, 1, [3; 4]),
        // 3x3 stride 1 pad 1, Cin % 8 != 0, Cout not a multiple of 32.
        spec([1, 9, 7], [13, 20], [3, 3], 1, 1, 1, [1; 4]),
        // EfficientNet stem: 3x3 stride 2 "SAME" (odd pixel bottom/right) on even and odd sizes.
        same(spec([2, 10, 11], [3, 32], [3, 3], 2, 1, 1, [0; 4])),
        same(spec([2, 11, 10], [16, 36], [3, 3], 2, 1, 1, [0; 4])),
        // 5x5 stride 2 "SAME".
        same(spec([1, 15, 13], [24, 12], [5, 5], 2, 1, 1, [0; 4])),
        // ResNet downsample: 1x1 stride 2.
        spec([2, 9, 9], [12, 40], [1, 1], 2, 1, 1, [0; 4]),
        // 1x1 stride 1: the matmul route.
        spec([2, 5, 7], [10, 24], [1, 1], 1, 1, 1, [0; 4]),
        // Inception's 1x7 and 7x1.
        spec([1, 8, 9], [9, 8], [1, 7], 1, 1, 1, [0, 0, 3, 3]),
        spec([1, 9, 6], [8, 12], [7, 1], 1, 1, 1, [3, 3, 0, 0]),
        // Dilation 2.
        spec([1, 12, 11], [8, 16], [3, 3], 1, 2, 1, [2; 4]),
        same(spec([1, 13, 12], [5, 8], [3, 3], 2, 2, 1, [0; 4])),
        // Groups: Cout / groups = 12 (vec4 columns) and 5 (tiled only).
        spec([1, 7, 8], [8, 24], [3, 3], 1, 1, 2, [1; 4]),
        spec([1, 6, 5], [9, 15], [3, 3], 2, 1, 3, [1, 0, 1, 0]),
        // Cout % 4 != 0 (tiled only).
        spec([1, 6, 6], [5, 7], [3, 3], 1, 1, 1, [1; 4]),
        // Asymmetric padding larger on one side.
        spec([2, 7, 9], [6, 8], [3, 3], 1, 1, 1, [2, 0, 0, 2]),
        // Depthwise as a grouped GEMM (groups = C) besides its own kernel.
        spec([2, 9, 7], [12, 12], [3, 3], 2, 1, 12, [1; 4]),
        // Deep K (576) and more than one 64 x 64 tile in both directions.
        spec([2, 10, 9], [64, 72], [3, 3], 1, 1, 1, [1; 4]),
        // Kernel rows read as runs (cin < 8, one group, no dilation: ops::conv::row_taps, as the
        // stems above and the asymmetric padding with 6 channels): one channel, 5 taps a row;
        // 7 channels, 21 elements a row, the last block past K.
        spec([1, 9, 10], [1, 16], [5, 5], 1, 1, 1, [2; 4]),
        spec([2, 6, 7], [7, 12], [3, 3], 2, 1, 1, [1; 4]),
    ];
    let (mut subgroup_runs, mut texture_runs) = (0, 0);
    for ran in check_cases(&gpu, &mut rng, &cases, Storage::F32) {
        assert!(ran.contains(&ConvVariant::Tiled));
        subgroup_runs += ran.contains(&ConvVariant::Subgroup) as usize;
        texture_runs += ran.contains(&ConvVariant::Texture) as usize;
    }
    if gpu.is_cpu() && gpu.has_subgroups() {
        assert!(
            subgroup_runs >= 12 && texture_runs == subgroup_runs,
            "subgroup conv ran on {subgroup_runs} cases only, from textures on {texture_runs}"
        );
    }
}

#[test]
fn conv2d_variants_apply_every_activation_with_every_epilogue() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    let s = spec([1, 7, 5], [11, 16], [3, 3], 2, 1, 1, [1, 1, 0, 1]);
    for act in ACTS {
        check_conv(&gpu, &mut rng, &s, Storage::F32, &FLAGS, |_| act);
    }
}

#[test]
fn depthwise_conv2d_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let same = |s: ConvSpec| s.with_same_padding();
    let dw = |hw: [usize; 3], c: usize, k: usize, stride: usize, pads: [usize; 4]| {
        spec(hw, [c, c], [k, k], stride, 1, c, pads)
    };
    let cases = [
        // Output widths 1..7 cover every strip tail (Wo % 4 = 0, 1, 2, 3).
        dw([2, 5, 5], 4, 3, 1, [1; 4]),
        dw([1, 6, 6], 12, 3, 1, [1; 4]),
        dw([1, 7, 7], 36, 3, 1, [1; 4]),
        dw([2, 3, 3], 8, 3, 1, [1; 4]),
        same(dw([2, 11, 10], 16, 3, 2, [0; 4])),
        same(dw([1, 14, 15], 40, 5, 2, [0; 4])),
        same(dw([1, 9, 9], 20, 5, 1, [0; 4])),
        // ConvNeXt: 7x7 stride 1 pad 3.
        dw([2, 9, 11], 40, 7, 1, [3; 4]),
        dw([1, 4, 6], 8, 7, 1, [3; 4]),
        // Asymmetric and large padding.
        dw([1, 8, 9], 12, 3, 2, [2, 0, 1, 2]),
        // Dilation 2.
        spec([1, 10, 9], [8, 8], [3, 3], 1, 2, 8, [2; 4]),
        // C % 4 != 0: conv2d() routes to the grouped GEMM.
        dw([1, 7, 6], 6, 3, 1, [1; 4]),
    ];
    let runs = check_cases(&gpu, &mut rng, &cases, Storage::F32);
    for (s, ran) in cases.iter().zip(runs) {
        let want_depthwise = s.cin % 4 == 0;
        // Both depthwise kernels (storage buffers, textures) ran, and matched the reference.
        for v in [ConvVariant::Depthwise, ConvVariant::DepthwiseTexture] {
            assert_eq!(ran.contains(&v), want_depthwise, "{v:?} on {s:?}");
        }
        let preferred = conv::preferred_conv_variant(&gpu, s);
        assert_eq!(
            matches!(
                preferred,
                ConvVariant::Depthwise | ConvVariant::DepthwiseTexture
            ),
            want_depthwise,
            "{s:?}"
        );
        // The texture kernel where the adapter's timing chose the matmul from textures.
        if want_depthwise {
            assert_eq!(
                preferred == ConvVariant::DepthwiseTexture,
                gpu.choices().reads_textures(),
                "{s:?}"
            );
        }
    }
}

#[test]
fn conv_variants_read_f16_weights() {
    let gpu = gpu();
    let mut rng = Rng::new(35);
    let same = |s: ConvSpec| s.with_same_padding();
    let cases = [
        // The stem (K % 8 tail), 3x3 with Cin % 8 != 0, a 1x1, groups, Cout % 4 != 0.
        spec([2, 17, 19], [3, 8], [7, 7], 2, 1, 1, [3; 4]),
        spec([1, 9, 7], [13, 20], [3, 3], 1, 1, 1, [1; 4]),
        spec([2, 5, 7], [10, 24], [1, 1], 1, 1, 1, [0; 4]),
        spec([1, 7, 8], [8, 24], [3, 3], 1, 1, 2, [1; 4]),
        spec([1, 6, 6], [5, 7], [3, 3], 1, 1, 1, [1; 4]),
        // Depthwise 3x3 and 5x5 "SAME", 7x7 (ConvNeXt).
        same(spec([2, 11, 10], [16, 16], [3, 3], 2, 1, 16, [0; 4])),
        same(spec([1, 9, 9], [20, 20], [5, 5], 1, 1, 20, [0; 4])),
        spec([1, 4, 6], [8, 8], [7, 7], 1, 1, 8, [3; 4]),
    ];
    let ran: Vec<ConvVariant> = check_cases(&gpu, &mut rng, &cases, Storage::F16)
        .into_iter()
        .flatten()
        .collect();
    for v in ConvVariant::ALL {
        assert!(
            ran.contains(&v) || !(gpu.is_cpu() && gpu.has_subgroups()),
            "{v:?} never ran with f16 weights"
        );
    }
}

#[test]
fn conv2d_folds_large_grids() {
    // conv2d_subgroup: M / 8 = 66,613 workgroups exceed 65,535 along one dimension;
    // conv2d_tiled: M / 64 = 65,601 tiles do. Both must recover their tile from a 2-D grid.
    let gpu = gpu();
    let mut rng = Rng::new(34);
    let s = spec([1, 730, 730], [1, 4], [3, 3], 1, 1, 1, [1; 4]);
    let ran = check_conv(
        &gpu,
        &mut rng,
        &s,
        Storage::F32,
        &[(true, false, false)],
        |_| Act::Relu,
    );
    assert!(ran.contains(&ConvVariant::Subgroup) || !gpu.is_cpu());
    let s = spec([1, 2049, 2049], [1, 4], [1, 1], 1, 1, 1, [1, 0, 0, 1]);
    check_conv(
        &gpu,
        &mut rng,
        &s,
        Storage::F32,
        &[(false, false, true)],
        |_| Act::None,
    );
}

#[test]
fn conv2d_rejects_bad_geometry_and_short_buffers() {
    let gpu = gpu();
    let s = spec([1, 5, 5], [4, 8], [3, 3], 1, 1, 1, [1; 4]);
    let x = gpu.zeros("x", &[1, 5, 5, 4]).unwrap();
    let w = gpu.zeros("w", &[36, 8]).unwrap();
    let out = gpu.zeros("out", &[25, 8]).unwrap();
    let short = gpu.zeros("short", &[24, 8]).unwrap();
    let epi = Epilogue::default();
    let err = |r: sparsescope::Result<_>| r.unwrap_err().to_string();
    assert!(err(conv::conv2d(&gpu, &x, &w, &s, &short, epi)).contains("out holds 192 elements"));
    let x_short = gpu.zeros("x", &[99]).unwrap();
    assert!(err(conv::conv2d(&gpu, &x_short, &w, &s, &out, epi)).contains("input holds 99"));
    let wide = ConvSpec { cout: 9, ..s };
    assert!(err(conv::conv2d(&gpu, &x, &w, &wide, &out, epi)).contains("weight holds 288"));
    let grouped = ConvSpec { groups: 3, ..s };
    assert!(err(conv::conv2d(&gpu, &x, &w, &grouped, &out, epi)).contains("multiples of groups"));
    let big = ConvSpec {
        kernel: [7, 7],
        pads: [0; 4],
        ..s
    };
    assert!(err(conv::conv2d(&gpu, &x, &w, &big, &out, epi)).contains("does not fit"));
    let zero = ConvSpec { stride: 0, ..s };
    assert!(err(conv::conv2d(&gpu, &x, &w, &zero, &out, epi)).contains("at least 1"));
    assert!(err(conv::depthwise_conv2d(&gpu, &x, &w, &s, &out, epi)).contains("not depthwise"));
    let bias = gpu.zeros("bias", &[7]).unwrap();
    let with_bias = Epilogue {
        bias: Some(&bias),
        ..epi
    };
    assert!(err(conv::conv2d(&gpu, &x, &w, &s, &out, with_bias)).contains("bias holds 7"));
    let odd = ConvSpec { cout: 6, ..s };
    if gpu.has_subgroups() {
        let e = err(conv::conv2d_with(
            &gpu,
            ConvVariant::Subgroup,
            &x,
            &w,
            &odd,
            &out,
            epi,
        ));
        assert!(e.contains("not a multiple of 4"), "{e}");
    }
    let e = err(conv::conv2d_with(
        &gpu,
        ConvVariant::Matmul,
        &x,
        &w,
        &s,
        &out,
        epi,
    ));
    assert!(e.contains("not a 1x1"), "{e}");
    assert!(conv_weight_layout(&[0.0; 5], [1, 1, 2, 3]).is_err());
}

#[test]
fn same_padding_follows_tensorflow() {
    // pad_total = max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0), the odd pixel after.
    for n in 1..40 {
        for k in 1..8 {
            for s in 1..4 {
                for d in 1..3 {
                    let (before, after) = same_pads(n, k, s, d);
                    let out = n.div_ceil(s);
                    let total = ((out - 1) * s + (k - 1) * d + 1).saturating_sub(n);
                    assert_eq!((before, after), (total / 2, total - total / 2));
                    // The output of a SAME convolution is ceil(n / s).
                    let sp = spec([1, n, n], [1, 1], [k, k], s, d, 1, [0; 4]).with_same_padding();
                    assert_eq!(sp.output().unwrap(), (out, out), "n={n} k={k} s={s} d={d}");
                }
            }
        }
    }
    // EfficientNet's stem on 224: 3x3 stride 2 pads 0 above/left, 1 below/right.
    assert_eq!(same_padding(224, 224, [3, 3], 2, 1), [0, 1, 0, 1]);
    assert_eq!(same_padding(225, 224, [5, 5], 2, 1), [2, 2, 1, 2]);
    assert_eq!(same_padding(7, 7, [3, 3], 1, 1), [1, 1, 1, 1]);
}

#[test]
fn conv_weight_layout_is_hwio() {
    // [Cout = 2, Cin = 3, kh = 2, kw = 2] with w[co, ci, ky, kx] = 1000 co + 100 ci + 10 ky + kx.
    let (cout, cin, kh, kw) = (2, 3, 2, 2);
    let mut w = Vec::new();
    for co in 0..cout {
        for ci in 0..cin {
            for ky in 0..kh {
                for kx in 0..kw {
                    w.push((1000 * co + 100 * ci + 10 * ky + kx) as f32);
                }
            }
        }
    }
    let hwio = conv_weight_layout(&w, [cout, cin, kh, kw]).unwrap();
    for ky in 0..kh {
        for kx in 0..kw {
            for ci in 0..cin {
                for co in 0..cout {
                    let got = hwio[((ky * kw + kx) * cin + ci) * cout + co];
                    assert_eq!(got, (1000 * co + 100 * ci + 10 * ky + kx) as f32);
                }
            }
        }
    }
}

#[test]
fn fold_batchnorm_equals_conv_then_batchnorm() {
    // conv(x, w') + b' == gamma * (conv(x, w) + b - mean) / sqrt(var + eps) + beta.
    let mut rng = Rng::new(35);
    let s = spec([1, 6, 5], [4, 6], [3, 3], 2, 1, 2, [1, 0, 1, 1]);
    let cout = s.cout;
    let x = rng.vec(6 * 5 * 4, -2.0, 2.0);
    let w = rng.vec(cout * 2 * 9, -1.0, 1.0);
    let b = rng.vec(cout, -0.5, 0.5);
    let gamma = rng.vec(cout, 0.2, 2.0);
    let beta = rng.vec(cout, -1.0, 1.0);
    let mean = rng.vec(cout, -0.5, 0.5);
    let var = rng.vec(cout, 0.01, 3.0);
    let eps = 1e-3;
    let plain = EpilogueData {
        bias: Some(&b),
        scale: None,
        res: None,
        act: Act::None,
    };
    let conv_out = conv_reference(&x, &w, &s, &plain);
    let (mut wf, mut bf) = (w.clone(), b.clone());
    fold_batchnorm(&mut wf, &mut bf, &gamma, &beta, &mean, &var, eps).unwrap();
    let folded = conv_reference(
        &x,
        &wf,
        &s,
        &EpilogueData {
            bias: Some(&bf),
            ..plain
        },
    );
    let want: Vec<f32> = conv_out
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = i % cout;
            gamma[c] * (v - mean[c]) / (var[c] + eps).sqrt() + beta[c]
        })
        .collect();
    assert_close("folded BatchNorm", &folded, &want, 1e-5, 1e-5);
    assert!(fold_batchnorm(&mut wf, &mut bf, &gamma[..5], &beta, &mean, &var, eps).is_err());
}

fn pool_reference(
    x: &[f32],
    [b, h, w, c]: [usize; 4],
    k: usize,
    s: usize,
    p: usize,
    mode: &str,
) -> Vec<f32> {
    let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = Vec::with_capacity(b * ho * wo * c);
    for bi in 0..b {
        for oy in 0..ho {
            for ox in 0..wo {
                for ci in 0..c {
                    let mut vals = Vec::new();
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (
                                (oy * s + ky) as isize - p as isize,
                                (ox * s + kx) as isize - p as isize,
                            );
                            if iy >= 0 && iy < h as isize && ix >= 0 && ix < w as isize {
                                vals.push(x[((bi * h + iy as usize) * w + ix as usize) * c + ci]);
                            }
                        }
                    }
                    let sum: f64 = vals.iter().map(|&v| v as f64).sum();
                    out.push(match mode {
                        // PyTorch: NaN wins, else the largest (padding is -inf).
                        "max" => vals.iter().fold(f32::NEG_INFINITY, |m, &v| {
                            if v.is_nan() || m.is_nan() {
                                f32::NAN
                            } else {
                                m.max(v)
                            }
                        }),
                        "avg_include_pad" => (sum / (k * k) as f64) as f32,
                        _ => (sum / vals.len() as f64) as f32,
                    });
                }
            }
        }
    }
    out
}

fn check_pool(gpu: &Gpu, rng: &mut Rng, dims: [usize; 4], k: usize, s: usize, p: usize) {
    let [b, h, w, c] = dims;
    let mut x = rng.vec(b * h * w * c, -3.0, 1.0);
    // Infinities and a NaN must come through as PyTorch gives them.
    if x.len() > 10 {
        x[3] = f32::NEG_INFINITY;
        x[7] = f32::INFINITY;
        let mid = x.len() / 2;
        x[mid] = f32::NAN;
    }
    let tx = gpu.upload("x", &[b, h, w, c], &x).unwrap();
    let (ho, wo) = pool::pool_output("test", dims, k, s, p).unwrap();
    let out = gpu.zeros("out", &[b, ho, wo, c]).unwrap();
    // Max pooling by every kernel that takes these channels (the texture kernel must not fall
    // back here: every shape fits), average pooling by its one kernel.
    let runs = pool::MaxPoolVariant::ALL
        .into_iter()
        .filter(|v| v.unsupported(c).is_none())
        .map(|v| (Some(v), "max"))
        .chain([(None, "avg_include_pad"), (None, "avg_exclude_pad")]);
    for (variant, mode) in runs {
        gpu.write(&out, &vec![1234.5f32; b * ho * wo * c]);
        let d = match variant {
            Some(v) => pool::max_pool2d_with(gpu, v, &tx, dims, k, s, p, &out),
            None => pool::avg_pool2d(gpu, &tx, dims, k, s, p, mode == "avg_include_pad", &out),
        }
        .unwrap();
        if variant == Some(pool::MaxPoolVariant::Texture) {
            assert_eq!(d.kernel, "max_pool2d_texture", "{dims:?}");
        }
        run(gpu, d);
        let got: Vec<f32> = gpu.read(&out).unwrap();
        let want = pool_reference(&x, dims, k, s, p, mode);
        let what = format!("{mode} pool {variant:?} {dims:?} k={k} s={s} p={p}");
        // NaN and infinities must match exactly; finite values to rounding.
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            if !e.is_finite() {
                assert!(
                    g.is_nan() == e.is_nan() && (e.is_nan() || g == e),
                    "{what}: index {i}: expected {e}, got {g}"
                );
            }
        }
        let finite = |v: &[f32]| {
            v.iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect::<Vec<_>>()
        };
        assert_close(&what, &finite(&got), &finite(&want), 1e-6, 1e-6);
    }
}

#[test]
fn pooling_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(36);
    // ResNet's 3x3 stride 2 pad 1 on odd and even sizes, then other windows; C % 4 == 0 also
    // runs max_pool2d_vec4 and max_pool2d_texture.
    for (dims, k, s, p) in [
        ([2, 9, 11, 5], 3, 2, 1),
        ([2, 9, 11, 8], 3, 2, 1),
        ([1, 11, 9, 12], 5, 2, 2),
        ([1, 7, 6, 4], 2, 2, 0),
        ([1, 8, 8, 64], 3, 2, 1),
        ([1, 7, 6, 3], 2, 2, 0),
        ([2, 5, 7, 4], 3, 1, 1),
        ([1, 11, 9, 2], 5, 2, 2),
        ([1, 3, 3, 1], 3, 3, 0),
        ([1, 1, 1, 3], 1, 1, 0),
    ] {
        check_pool(&gpu, &mut rng, dims, k, s, p);
    }
    let x = gpu.zeros("x", &[1, 4, 4, 2]).unwrap();
    let out = gpu.zeros("out", &[32]).unwrap();
    let e = pool::max_pool2d(&gpu, &x, [1, 4, 4, 2], 3, 2, 2, &out).unwrap_err();
    assert!(e.to_string().contains("over half the kernel"), "{e}");
    let e = pool::max_pool2d(&gpu, &x, [1, 4, 4, 3], 3, 1, 1, &out).unwrap_err();
    assert!(e.to_string().contains("input holds 32"), "{e}");
}

#[test]
fn max_pool2d_folds_large_grids() {
    // Over 65,535 workgroups along one dimension: 1025 * 1025 * 5 outputs of one channel each
    // (max_pool2d), 2049 * 1025 * 2 vec4 of channels (max_pool2d_vec4) and 2049 * 1025 pixels
    // (max_pool2d_texture, 8 per workgroup).
    let gpu = gpu();
    let mut rng = Rng::new(37);
    for dims in [[1, 1025, 1025, 5], [1, 2049, 1025, 8]] {
        let x = rng.vec(dims.iter().product(), -1.0, 1.0);
        let tx = gpu.upload("x", &dims, &x).unwrap();
        let out = gpu.zeros("out", &dims).unwrap();
        let want = pool_reference(&x, dims, 3, 1, 1, "max");
        for v in pool::MaxPoolVariant::ALL {
            if v.unsupported(dims[3]).is_some() {
                continue;
            }
            gpu.write(&out, &vec![f32::NAN; want.len()]);
            run(
                &gpu,
                pool::max_pool2d_with(&gpu, v, &tx, dims, 3, 1, 1, &out).unwrap(),
            );
            assert_close(
                &format!("max pool {v:?} {dims:?}"),
                &gpu.read::<f32>(&out).unwrap(),
                &want,
                0.0,
                0.0,
            );
        }
    }
}

#[test]
fn global_avg_pool_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(38);
    for (b, p, c) in [(1, 1, 1), (2, 49, 67), (3, 7, 1280), (1, 3136, 5)] {
        let x = rng.vec(b * p * c, -2.0, 3.0);
        let tx = gpu.upload("x", &[b, p, c], &x).unwrap();
        let out = gpu.zeros("out", &[b, c]).unwrap();
        gpu.write(&out, &vec![f32::NAN; b * c]);
        run(
            &gpu,
            pool::global_avg_pool(&gpu, &tx, b, p, c, &out).unwrap(),
        );
        let want: Vec<f32> = (0..b * c)
            .map(|i| {
                let (bi, ci) = (i / c, i % c);
                let sum: f64 = (0..p).map(|pi| x[(bi * p + pi) * c + ci] as f64).sum();
                (sum / p as f64) as f32
            })
            .collect();
        let got: Vec<f32> = gpu.read(&out).unwrap();
        assert_close(
            &format!("global_avg_pool b={b} p={p} c={c}"),
            &got,
            &want,
            1e-5,
            1e-5,
        );
    }
    let x = gpu.zeros("x", &[2, 3, 4]).unwrap();
    let out = gpu.zeros("out", &[2, 4]).unwrap();
    assert!(pool::global_avg_pool(&gpu, &x, 2, 4, 4, &out).is_err());
}

#[test]
fn nchw_to_nhwc_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(39);
    for [b, c, h, w] in [[1, 1, 1, 1], [2, 3, 7, 5], [3, 3, 33, 17], [1, 5, 130, 131]] {
        let img = rng.vec(b * c * h * w, 0.0, 1.0);
        let timg: Tensor = gpu.upload("img", &[b, c, h, w], &img).unwrap();
        let out = gpu.zeros("out", &[b, h, w, c]).unwrap();
        run(
            &gpu,
            sparsescope::gpu::ops::layout::nchw_to_nhwc(&gpu, &timg, &out).unwrap(),
        );
        let got: Vec<f32> = gpu.read(&out).unwrap();
        let mut want = vec![0.0; img.len()];
        for bi in 0..b {
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        want[((bi * h + y) * w + x) * c + ci] =
                            img[((bi * c + ci) * h + y) * w + x];
                    }
                }
            }
        }
        assert_close(
            &format!("nchw_to_nhwc {:?}", [b, c, h, w]),
            &got,
            &want,
            0.0,
            0.0,
        );
    }
    let flat = gpu.zeros("flat", &[12]).unwrap();
    assert!(sparsescope::gpu::ops::layout::nchw_to_nhwc(&gpu, &flat, &flat).is_err());
}
