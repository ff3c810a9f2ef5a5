//! Criterion benches of every kernel family except matmul (benches/matmul.rs, which compares
//! with numpy's sgemm) on the adapter at hand, at the shapes the bundled and benchmark models
//! use, with every variant that can run here: convolution (tiled and subgroup implicit GEMM,
//! depthwise, 1x1 as matmul), attention (fused kernel and matmul path), LayerNorm, and the
//! statistics of one tap (`stats_tap` and its folds). Throughput is in FLOP (convolution,
//! attention) or activation elements (LayerNorm, statistics) per second.
//!
//! The kernels' correctness is tested in tests/kernels and tests/stats_kernels; these only time.
//! A timed iteration runs one plan and waits for the queue (submission overhead included).
//!
//! Run: cargo bench --bench kernels [-- FILTER]

use std::time::Duration;

use criterion::{Criterion, Throughput};
use sparsescope::gpu::ops::conv::{ConvSpec, ConvVariant, conv2d_with};
use sparsescope::gpu::ops::{self, Attention, AttentionVariant, Epilogue};
use sparsescope::gpu::{Gpu, GpuOptions, Plan, Step};
use sparsescope::model::{TapInfo, TapKind};
use sparsescope::stats::{StatsConfig, TapStats};

fn gpu() -> Gpu {
    Gpu::new(&GpuOptions::default()).expect("benches need a wgpu adapter")
}

/// Time `plan` (already recorded) as one criterion benchmark of `amount` units per run.
fn bench_plan(c: &mut Criterion, group: &str, name: &str, gpu: &Gpu, plan: &Plan, amount: u64) {
    plan.run(gpu).expect("warm-up run"); // compiles the pipelines
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(amount));
    g.bench_function(name, |b| b.iter(|| plan.run(gpu).expect("run")));
    g.finish();
}

fn conv(c: &mut Criterion, gpu: &Gpu) {
    // ResNet-50 layer2 3x3 (batch 8, 28x28, 128 -> 128), EfficientNet-Lite0 block-2 depthwise
    // (56x56, 144 channels), and 1x1 convolutions of ResNet-50 and EfficientNet-Lite0.
    let cases = [
        (
            "3x3 128->128 28x28",
            ConvSpec::new(8, 28, 28, 128, 128, 3, 1, 1, 1),
        ),
        (
            "depthwise 3x3 144 56x56",
            ConvSpec::new(8, 56, 56, 144, 144, 3, 1, 1, 144),
        ),
        (
            "1x1 256->64 28x28",
            ConvSpec::new(8, 28, 28, 256, 64, 1, 1, 0, 1),
        ),
        (
            "1x1 64->256 56x56",
            ConvSpec::new(8, 56, 56, 64, 256, 1, 1, 0, 1),
        ),
        (
            "1x1 24->144 56x56",
            ConvSpec::new(8, 56, 56, 24, 144, 1, 1, 0, 1),
        ),
        (
            "1x1 1024->256 14x14",
            ConvSpec::new(8, 14, 14, 1024, 256, 1, 1, 0, 1),
        ),
        // ViT-B/16 linear layers at batch 8 (197 tokens as a 197x1 image).
        (
            "1x1 768->768 197x1",
            ConvSpec::new(8, 197, 1, 768, 768, 1, 1, 0, 1),
        ),
        (
            "1x1 768->3072 197x1",
            ConvSpec::new(8, 197, 1, 768, 3072, 1, 1, 0, 1),
        ),
    ];
    for (label, spec) in cases {
        let (oh, ow) = spec.output().expect("valid spec");
        let per_group = spec.cin / spec.groups;
        let [kh, kw] = spec.kernel;
        let x = gpu
            .zeros("x", &[spec.batch, spec.height, spec.width, spec.cin])
            .unwrap();
        let w = gpu.zeros("w", &[kh * kw * per_group, spec.cout]).unwrap();
        let out = gpu.zeros("out", &[spec.batch, oh, ow, spec.cout]).unwrap();
        let flops = 2 * (spec.batch * oh * ow * spec.cout * kh * kw * per_group) as u64;
        for v in ConvVariant::ALL {
            if v.unsupported(gpu, &spec).is_some() {
                continue;
            }
            let mut plan = Plan::default();
            plan.push(conv2d_with(gpu, v, &x, &w, &spec, &out, Epilogue::default()).unwrap());
            bench_plan(c, "conv2d", &format!("{v:?} {label}"), gpu, &plan, flops);
        }
    }
}

fn attention(c: &mut Criterion, gpu: &Gpu) {
    // ViT-B/16 at batch 8: 197 tokens, 12 heads of 64.
    let (b, t, h, dh) = (8, 197, 12, 64);
    let qkv = gpu.zeros("qkv", &[b, t, 3 * h * dh]).unwrap();
    let out = gpu.zeros("out", &[b, t, h * dh]).unwrap();
    let flops = 4 * (b * h * t * t * dh) as u64;
    for v in AttentionVariant::ALL {
        let att = Attention::new(gpu, v, b, t, h, dh).unwrap();
        let mut plan = Plan::default();
        plan.push_all(att.dispatches(gpu, &qkv, &out).unwrap());
        bench_plan(
            c,
            "attention",
            &format!("{v:?} ViT-B b8"),
            gpu,
            &plan,
            flops,
        );
    }
}

fn layernorm(c: &mut Criterion, gpu: &Gpu) {
    let (rows, cols) = (8 * 197, 768);
    let x = gpu.zeros("x", &[rows, cols]).unwrap();
    let w = gpu.zeros("w", &[cols]).unwrap();
    let out = gpu.zeros("out", &[rows, cols]).unwrap();
    for v in ops::LayernormVariant::ALL {
        let mut plan = Plan::default();
        plan.push(ops::layernorm_with(gpu, v, &x, &w, &w, 1e-6, &out).unwrap());
        bench_plan(
            c,
            "layernorm",
            &format!("{v:?} 1576x768"),
            gpu,
            &plan,
            (rows * cols) as u64,
        );
    }
}

/// Activation-like values without a random-number crate: a GELU of a smooth pseudo-random
/// wave (about half the entries near or below zero, a tail of large ones) or, `relu`, its
/// positive part with exact zeros, as a CNN tap after ReLU. The statistics kernel is
/// branch-free, but its histogram writes land where the values fall, so zeros would not do.
fn activations(len: usize, relu: bool) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = i as f32 * 0.618_034;
            let x = 2.0 * ((t * 12.9898).sin() * 43_758.547).fract() - 1.0 + 0.3 * (t * 0.01).cos();
            let x = 2.5 * x;
            if relu {
                x.max(0.0)
            } else {
                0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
            }
        })
        .collect()
}

fn stats(c: &mut Criterion, gpu: &Gpu) {
    // Every default statistic of one tap at batch 8: a ViT-B MLP hidden tap [8, 197, 3072]
    // (GELU) and a ResNet-50 layer1 block output [8, 56 * 56, 256] (ReLU).
    let batch = 8;
    for (case, positions, channels, relu) in [
        ("vit-b mlp 8x197x3072", 197, 3072, false),
        ("resnet50 layer1 8x3136x256", 3136, 256, true),
    ] {
        let tap = TapInfo {
            name: "tap".into(),
            kind: TapKind::Hidden,
            depth: 0,
            positions,
            channels,
        };
        let stats = TapStats::new(gpu, &tap, batch, &StatsConfig::default()).unwrap();
        stats.set_batch(gpu, batch, None).unwrap();
        let shape = [batch, positions, channels];
        let x = gpu
            .upload(
                "tap",
                &shape,
                &activations(batch * positions * channels, relu),
            )
            .unwrap();
        let plan = Plan {
            steps: stats
                .record(gpu, &x)
                .unwrap()
                .into_iter()
                .collect::<Vec<Step>>(),
        };
        let elements = (batch * positions * channels) as u64;
        bench_plan(c, "stats", case, gpu, &plan, elements);
    }
}

fn main() {
    let gpu = gpu();
    eprintln!("adapter: {} ({:?})", gpu.info.name, gpu.info.device_type);
    let mut c = Criterion::default().configure_from_args();
    conv(&mut c, &gpu);
    attention(&mut c, &gpu);
    layernorm(&mut c, &gpu);
    stats(&mut c, &gpu);
    c.final_summary();
}
