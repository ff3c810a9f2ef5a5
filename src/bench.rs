//! `sparsescope bench`: how fast the adapter at hand runs a model, forward only and forward plus
//! every default statistic (exactly the plan `run` executes), and where the time goes per
//! kernel (GPU timestamps where the adapter has them).

use std::time::Instant;

use crate::error::Result;
use crate::gpu::{AdapterSummary, Gpu, KernelProfile};
use crate::model::Network;
use crate::pass::StatsPass;
use crate::rdm::{DEFAULT_SKETCH_DIM, FlatMode, Measure, stream_rdms};
use crate::stats::StatsConfig;

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelTime {
    pub kernel: &'static str,
    pub dispatches: usize,
    pub seconds: f64,
    /// GPU time before its dispatches, where their texture copies run
    /// (`gpu::KernelProfile::copy_seconds`).
    pub copy_seconds: f64,
    /// Share of the profiled forward-plus-statistics kernel time.
    pub share: f64,
    pub gflops: f64,
    /// Bound bytes over time: a lower bound on the bandwidth the kernel used.
    pub gbytes_per_s: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub adapter: AdapterSummary,
    /// The kernels chosen for this adapter and how (gpu::tuning), e.g. "matmul subgroup,
    /// attention matmul (read from ~/.cache/sparsescope/tuning.json)".
    pub kernel_choices: String,
    pub model: String,
    /// Weight matrices and kernels stored as f16 (`--f16-weights`).
    pub f16_weights: bool,
    pub batch: usize,
    pub input: [usize; 3],
    pub iterations: usize,
    pub forward_images_per_s: f64,
    pub forward_gflops: f64,
    pub stats_images_per_s: f64,
    /// The cost of the statistics: the median over the rounds of (forward + statistics time) /
    /// (forward time), each round's two batches run back to back, so that a round slowed by
    /// other work on the machine moves it less than a ratio of mean times.
    pub stats_cost_ratio: f64,
    /// Each round's ratio, in the order run.
    pub stats_cost_ratios: Vec<f64>,
    /// Images the statistics pass accumulated (warm-up and timed batches).
    pub finalise_images: usize,
    /// Seconds to finalise the flat correlation RDMs of every tap over `finalise_images` images
    /// after the pass (their inner products, O(N^2): not part of the per-image rates above).
    pub finalise_seconds: f64,
    /// Per kernel name, slowest first; empty without timestamp queries.
    pub kernels: Vec<KernelTime>,
    /// Every dispatch of the same profiled batch in plan order (layer by layer, each tap's
    /// statistics right after its layer); empty without timestamp queries.
    pub dispatches: Vec<KernelProfile>,
}

/// Time `iterations` batches of each kind, alternated, after one warm-up batch of each
/// (pipelines compile lazily).
/// Statistics cover every tap, with sketched flat RDMs (what a large run uses).
pub fn bench(
    gpu: &Gpu,
    model: &dyn Network,
    batch: usize,
    iterations: usize,
) -> Result<BenchReport> {
    let [_, h, w] = model.preprocess().image_shape();
    let taps = model.taps(h, w)?;
    let all: Vec<usize> = (0..taps.len()).collect();
    let modes = vec![
        FlatMode::Sketch {
            dim: DEFAULT_SKETCH_DIM,
            seed: 0
        };
        taps.len()
    ];
    let iterations = iterations.max(1);
    let capacity = batch * (iterations + 3);
    let mut pass = StatsPass::new(
        gpu,
        model,
        &all,
        batch,
        (h, w),
        &StatsConfig::default(),
        &modes,
        capacity,
    )?;
    // A smooth deterministic input: the same work as a photo, no decoding in the timing.
    let input: Vec<f32> = (0..batch * 3 * h * w)
        .map(|i| ((i % 997) as f32 / 997.0 - 0.5) * 2.0)
        .collect();

    gpu.write(&pass.forward.input, &input);
    pass.forward.plan.run(gpu)?;
    pass.run_batch(gpu, input.clone(), batch, None)?;
    // One batch of each kind per round, alternated: on a machine whose speed drifts (shared
    // cores, clock changes) both kinds see the same drift, so their ratio stays fair.
    let (mut forward, mut with_stats) = (0.0, 0.0);
    let mut ratios = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        pass.forward.plan.run(gpu)?;
        let f = start.elapsed().as_secs_f64();
        let start = Instant::now();
        pass.run_batch(gpu, input.clone(), batch, None)?;
        let s = start.elapsed().as_secs_f64();
        forward += f;
        with_stats += s;
        ratios.push(s / f);
    }
    let forward = forward / iterations as f64;
    let with_stats = with_stats / iterations as f64;

    let start = Instant::now();
    for acc in &pass.grams {
        stream_rdms(
            &mut acc.source(gpu)?,
            &[Measure::Correlation],
            &mut |_, _| Ok(()),
        )?;
    }
    let finalise_seconds = start.elapsed().as_secs_f64();
    let finalise_images = pass.grams.first().map_or(0, |g| g.count());

    let dispatches = if gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        let plan = pass.profiled_plan(gpu)?;
        plan.profile(gpu)?
    } else {
        Vec::new()
    };
    let kernels = group_by_kernel(&dispatches);
    Ok(BenchReport {
        adapter: gpu.summary(),
        kernel_choices: gpu.tuning().describe(),
        model: model.describe(),
        f16_weights: model.f16_weights(),
        batch,
        input: [3, h, w],
        iterations,
        forward_images_per_s: batch as f64 / forward,
        forward_gflops: pass.forward.plan.flops() as f64 / forward / 1e9,
        stats_images_per_s: batch as f64 / with_stats,
        stats_cost_ratio: median(&ratios),
        stats_cost_ratios: ratios,
        finalise_images,
        finalise_seconds,
        kernels,
        dispatches,
    })
}

/// The median of `values` (not empty): the middle one, or the mean of the middle two.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The dispatches' GPU times grouped by kernel name, slowest first.
fn group_by_kernel(dispatches: &[KernelProfile]) -> Vec<KernelTime> {
    let total: f64 = dispatches.iter().map(|d| d.seconds).sum();
    let mut groups: Vec<KernelTime> = Vec::new();
    for d in dispatches {
        let g = match groups.iter_mut().find(|g| g.kernel == d.kernel) {
            Some(g) => g,
            None => {
                groups.push(KernelTime {
                    kernel: d.kernel,
                    dispatches: 0,
                    seconds: 0.0,
                    copy_seconds: 0.0,
                    share: 0.0,
                    gflops: 0.0,
                    gbytes_per_s: 0.0,
                });
                groups.last_mut().unwrap()
            }
        };
        g.dispatches += 1;
        g.seconds += d.seconds;
        g.copy_seconds += d.copy_seconds;
        // Accumulate totals in the rate fields; divided by time below.
        g.gflops += d.flops as f64 / 1e9;
        g.gbytes_per_s += d.bytes as f64 / 1e9;
    }
    for g in &mut groups {
        g.share = g.seconds / total.max(f64::MIN_POSITIVE);
        let t = g.seconds.max(f64::MIN_POSITIVE);
        g.gflops /= t;
        g.gbytes_per_s /= t;
    }
    groups.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    groups
}
