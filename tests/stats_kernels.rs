//! The GPU tap statistics (src/stats/tap.rs, shaders/stats_*.wgsl) against the f64 CPU
//! reference (src/stats/reference.rs) on random data with exact zeros, negative zeros, values on
//! every kind of bin edge, NaN and +-Inf, odd P and C (not multiples of 4, 8 or 64; C % 4 != 0
//! takes the scalar kernel), several batches with a partial last batch whose padding rows hold
//! garbage, and labels. Counts and histograms must be exact, moments within 1e-6 relative,
//! Hoyer within 1e-5.

#[path = "support/mod.rs"]
mod support;

use sparsescope::gpu::{Gpu, Plan, Tensor};
use sparsescope::model::{TapInfo, TapKind};
use sparsescope::stats::reference::{reference_hoyer, reference_pooled, reference_totals};
use sparsescope::stats::spec::{LOG_BINS, LOG_MIN_EXP, ceil_f32, floor_f32, log_edges};
use sparsescope::stats::tap::default_groups;
use sparsescope::stats::{
    Histogram, LinearHistSpec, PosHistSpec, Predicate, StatsConfig, TapRead, TapStats, TapTotals,
};
use support::{Rng, gpu};

fn tap_info(p: usize, c: usize) -> TapInfo {
    TapInfo {
        name: format!("test[{p}x{c}]"),
        kind: TapKind::Hidden,
        depth: 0,
        positions: p,
        channels: c,
    }
}

/// What one pass over `x` [n, P, C] in batches of `batch` yields on the GPU.
struct GpuRun {
    totals: TapTotals,
    pooled: Vec<f32>,
    hoyer: Option<Vec<f32>>,
}

#[allow(clippy::too_many_arguments)]
fn run_gpu(
    gpu: &Gpu,
    x: &[f32],
    n: usize,
    p: usize,
    c: usize,
    batch: usize,
    labels: Option<&[u32]>,
    config: &StatsConfig,
    groups: Option<usize>,
    read: Option<TapRead>,
) -> GpuRun {
    let info = tap_info(p, c);
    let stats = match (groups, read) {
        (groups, Some(read)) => {
            let chunks = p.div_ceil(64);
            let g = groups.unwrap_or_else(|| default_groups(gpu, batch * chunks));
            TapStats::with_read(gpu, &info, batch, config, g, read)
        }
        (Some(g), None) => TapStats::with_groups(gpu, &info, batch, config, g),
        (None, None) => TapStats::new(gpu, &info, batch, config),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    if let Some(read) = read {
        let want = match read {
            TapRead::Texture => "stats_tap_texture",
            TapRead::Buffer if c.is_multiple_of(4) => "stats_tap",
            TapRead::Buffer => "stats_tap_scalar",
        };
        assert_eq!(stats.kernel(), want);
    }
    let tap: Tensor = gpu.zeros("tap", &[batch, p, c]).unwrap();
    let image = p * c;
    let mut pooled = Vec::new();
    let mut hoyer = config.hoyer_tokens.then(Vec::new);
    let mut start = 0;
    while start < n {
        let nb = batch.min(n - start);
        // Padding rows hold garbage that must not count: NaN, Inf, large and active values.
        let mut data: Vec<f32> = x[start * image..(start + nb) * image].to_vec();
        let garbage = [f32::NAN, 1e3, f32::INFINITY, 5.0, -7.0];
        data.extend((0..(batch - nb) * image).map(|i| garbage[i % garbage.len()]));
        gpu.write(&tap, &data);
        let l = labels.map(|l| &l[start..start + nb]);
        let steps = stats
            .steps(gpu, &tap, nb, l)
            .unwrap_or_else(|e| panic!("{e}"));
        Plan { steps }.run(gpu).unwrap();
        let pb: Vec<f32> = gpu.read(stats.pooled()).unwrap();
        pooled.extend_from_slice(&pb[..nb * c]);
        if let Some(h) = hoyer.as_mut() {
            let hb: Vec<f32> = gpu.read(stats.hoyer_tokens().unwrap()).unwrap();
            h.extend_from_slice(&hb[..nb * p]);
        }
        start += nb;
    }
    GpuRun {
        totals: stats.finish(gpu).unwrap(),
        pooled,
        hoyer,
    }
}

fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn assert_rel(what: &str, got: Option<f64>, want: Option<f64>, rtol: f64, atol: f64) {
    match (got, want) {
        (Some(g), Some(w)) => assert!(
            (g - w).abs() <= atol + rtol * w.abs(),
            "{what}: expected {w}, got {g} (|diff| {:.3e}, allowed {:.3e})",
            (g - w).abs(),
            atol + rtol * w.abs()
        ),
        (g, w) => assert_eq!(g, w, "{what}"),
    }
}

fn assert_counts(what: &str, got: &[u64], want: &[u64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: index {i}: expected {}, got {} (first mismatch; {} differ)",
            want[i],
            got[i],
            (0..got.len()).filter(|&i| got[i] != want[i]).count()
        );
    }
}

fn assert_hist(what: &str, got: &Histogram, want: &Histogram) {
    assert_counts(&format!("{what} counts"), &got.counts, &want.counts);
    assert_eq!(got.underflow, want.underflow, "{what} underflow");
    assert_eq!(got.overflow, want.overflow, "{what} overflow");
    assert_eq!(got.edges, want.edges, "{what} edges");
}

/// Every statistic of `got` against the reference: counts and histograms exact, moments to
/// 1e-6 relative, Hoyer to 1e-5.
fn assert_totals(ctx: &str, got: &TapTotals, want: &TapTotals) {
    assert_counts_exact(ctx, got, want);
    let w = |f: &str| format!("{ctx}: {f}");
    assert!(!got.moments_overflow, "{}", w("moments overflowed"));
    assert_rel(&w("mean"), got.mean, want.mean, 1e-6, 0.0);
    assert_rel(&w("std"), got.std, want.std, 1e-6, 0.0);
    assert_eq!(got.hoyer_tokens, want.hoyer_tokens, "{}", w("hoyer_tokens"));
    assert_eq!(
        got.hoyer_excluded,
        want.hoyer_excluded,
        "{}",
        w("hoyer_excluded")
    );
    assert_rel(&w("hoyer_mean"), got.hoyer_mean, want.hoyer_mean, 0.0, 1e-5);
    assert_rel(&w("hoyer_std"), got.hoyer_std, want.hoyer_std, 0.0, 1e-5);
}

/// Everything but the moments and Hoyer, which must match exactly.
fn assert_counts_exact(ctx: &str, got: &TapTotals, want: &TapTotals) {
    let w = |f: &str| format!("{ctx}: {f}");
    assert_eq!(got.images, want.images, "{}", w("images"));
    assert_eq!(got.entries, want.entries, "{}", w("entries"));
    assert_counts(&w("firing_count"), &got.firing_count, &want.firing_count);
    assert_counts(&w("active_images"), &got.active_images, &want.active_images);
    assert_counts(&w("class_images"), &got.class_images, &want.class_images);
    assert_counts(
        &w("active_images_by_class"),
        &got.active_images_by_class,
        &want.active_images_by_class,
    );
    for (name, g, wv) in [
        ("firing_rate", &got.firing_rate, &want.firing_rate),
        (
            "firing_rate_img",
            &got.firing_rate_img,
            &want.firing_rate_img,
        ),
        (
            "firing_rate_img_by_class",
            &got.firing_rate_img_by_class,
            &want.firing_rate_img_by_class,
        ),
    ] {
        assert_eq!(g.len(), wv.len(), "{}", w(name));
        for (i, (a, b)) in g.iter().zip(wv.iter()).enumerate() {
            assert!(
                same_f64(*a, *b),
                "{}: index {i}: expected {b}, got {a}",
                w(name)
            );
        }
    }
    for (name, g, wv) in [
        ("active_entries", got.active_entries, want.active_entries),
        ("zero_entries", got.zero_entries, want.zero_entries),
        ("nonzero_entries", got.nonzero_entries, want.nonzero_entries),
        ("nan_count", got.nan_count, want.nan_count),
        ("posinf_count", got.posinf_count, want.posinf_count),
        ("neginf_count", got.neginf_count, want.neginf_count),
        (
            "dead_channels",
            got.dead_channels as u64,
            want.dead_channels as u64,
        ),
    ] {
        assert_eq!(g, wv, "{}", w(name));
    }
    assert!(
        same_f64(got.frac_active, want.frac_active),
        "{}",
        w("frac_active")
    );
    assert!(
        same_f64(got.frac_nonzero, want.frac_nonzero),
        "{}",
        w("frac_nonzero")
    );
    assert_eq!(got.min, want.min, "{}", w("min"));
    assert_eq!(got.max, want.max, "{}", w("max"));
    assert_eq!(
        got.moments.count,
        want.moments.count,
        "{}",
        w("finite entries")
    );
    assert_hist(&w("hist"), &got.hist, &want.hist);
    assert_hist(&w("hist_pos"), &got.hist_pos, &want.hist_pos);
    assert_hist(&w("loghist_pos"), &got.loghist_pos, &want.loghist_pos);
    assert_hist(&w("loghist_neg"), &got.loghist_neg, &want.loghist_neg);
}

/// Pooled means against the f64 reference, within the bound of recursive f32 summation over
/// P terms (P * 2^-24 of the mean of |x|) plus the final division.
fn assert_pooled(ctx: &str, got: &[f32], x: &[f32], n: usize, p: usize, c: usize) {
    let want = reference_pooled(x, n, p, c).unwrap();
    let scale = reference_pooled(&x.iter().map(|v| v.abs()).collect::<Vec<_>>(), n, p, c).unwrap();
    assert_eq!(got.len(), want.len(), "{ctx}: pooled length");
    for i in 0..want.len() {
        let (g, w) = (got[i] as f64, want[i]);
        if w.is_nan() || w.is_infinite() || scale[i].is_infinite() {
            // The f32 sum of a column with NaN or Inf is NaN or Inf as well.
            assert!(!g.is_finite(), "{ctx}: pooled[{i}]: expected {w}, got {g}");
            continue;
        }
        let allowed = (p as f64 + 2.0) * f32::EPSILON as f64 / 2.0 * scale[i] + 1e-30;
        assert!(
            (g - w).abs() <= allowed,
            "{ctx}: pooled[{i}] (image {}, channel {}): expected {w}, got {g} (allowed {allowed:.3e})",
            i / c,
            i % c
        );
    }
}

fn assert_hoyer_tokens(ctx: &str, got: &[f32], x: &[f32], n: usize, p: usize, c: usize) {
    let want = reference_hoyer(x, n, p, c).unwrap();
    assert_eq!(got.len(), want.len(), "{ctx}: hoyer length");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        match w {
            None => assert!(
                g.is_nan(),
                "{ctx}: token {i}: expected excluded (NaN), got {g}"
            ),
            Some(w) => assert!(
                (*g as f64 - w).abs() <= 1e-5,
                "{ctx}: token {i}: expected Hoyer {w}, got {g}"
            ),
        }
    }
}

/// Values a histogram must place exactly: every kind of edge, and the f32 neighbours of edges.
fn edge_values(config: &StatsConfig) -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-40,
        -1e-40,
        f32::from_bits(1),
        -f32::from_bits(1),
        1e-30,
        1e12,
        -1e12,
        f32::MAX,
        f32::MIN,
    ];
    for e in config.hist.edges() {
        let f = ceil_f32(e);
        v.extend([f, f.next_down(), f.next_up(), -f]);
    }
    for e in config.hist_pos.edges() {
        let f = floor_f32(e);
        v.extend([f, f.next_down(), f.next_up()]);
    }
    for e in log_edges() {
        let f = ceil_f32(e);
        v.extend([f, f.next_down(), -f, -f.next_down()]);
    }
    v.push(2f32.powi(LOG_MIN_EXP));
    v
}

/// Random activations: mostly GELU-/ReLU-like values of several scales, many exact zeros, a
/// few channels that never fire, and a sprinkling of edge values (NaN and Inf included).
fn activations(rng: &mut Rng, n: usize, p: usize, c: usize, config: &StatsConfig) -> Vec<f32> {
    let edges = edge_values(config);
    let dead: Vec<bool> = (0..c).map(|ch| ch % 7 == 3).collect();
    let mut x = Vec::with_capacity(n * p * c);
    for i in 0..n * p * c {
        let ch = i % c;
        let r = rng.below(100);
        let v = if r < 25 {
            0.0
        } else if r < 30 {
            edges[rng.below(edges.len())]
        } else if r < 60 {
            rng.uniform(-20.0, 20.0)
        } else if r < 90 {
            rng.uniform(-0.3, 3.0)
        } else {
            rng.uniform(-1e-3, 1e-3) * 10f32.powi(rng.below(6) as i32 - 4)
        };
        // Dead channels hold only non-positive finite values.
        x.push(if dead[ch] {
            let v = if v.is_finite() { v } else { -1.0 };
            -v.abs()
        } else {
            v
        });
    }
    x
}

/// Keeps finite values within +-1e6. Larger ones would make the mean of the test data
/// ill-conditioned beyond f32-based summation (a sum of ~1e3 through terms of +-1e15 needs 60
/// bits; the GPU's double-f32 sums hold about 48), and would overflow |x|^2 in the f32 Hoyer
/// norms, which the GPU excludes on purpose. Extremes have their own test
/// (`extreme_values_keep_counts_exact_and_flag_moments`).
fn moderate(x: &mut [f32]) {
    for v in x.iter_mut() {
        if v.is_finite() && v.abs() > 1e6 {
            *v = v.signum() * 1e6;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_case(
    gpu: &Gpu,
    rng: &mut Rng,
    n: usize,
    p: usize,
    c: usize,
    batch: usize,
    classes: usize,
    config: &StatsConfig,
) {
    let config = StatsConfig {
        classes,
        hoyer_tokens: true,
        ..config.clone()
    };
    let mut x = activations(rng, n, p, c, &config);
    moderate(&mut x);
    let labels: Option<Vec<u32>> = (classes > 0).then(|| {
        // The last class stays empty: its per-class rates must be NaN.
        (0..n)
            .map(|_| rng.below(classes.max(2) - 1) as u32)
            .collect()
    });
    let ctx = format!(
        "[{n}, {p}, {c}] batch {batch}, {} classes, {}",
        classes, config.predicate
    );
    let want = reference_totals(&x, n, p, c, labels.as_deref(), &config).unwrap();
    // Every way of reading the tap: from its buffer, and (C % 4 == 0) from a texture copy.
    let reads: &[TapRead] = if c.is_multiple_of(4) {
        &[TapRead::Buffer, TapRead::Texture]
    } else {
        &[TapRead::Buffer]
    };
    for &read in reads {
        let ctx = format!("{ctx}, {read:?}");
        let got = run_gpu(
            gpu,
            &x,
            n,
            p,
            c,
            batch,
            labels.as_deref(),
            &config,
            None,
            Some(read),
        );
        assert_totals(&ctx, &got.totals, &want);
        assert_pooled(&ctx, &got.pooled, &x, n, p, c);
        assert_hoyer_tokens(&ctx, got.hoyer.as_ref().unwrap(), &x, n, p, c);
    }
}

#[test]
fn matches_reference_on_odd_shapes_and_edge_values() {
    let gpu = gpu();
    let mut rng = Rng::new(41);
    let config = StatsConfig::default();
    // (n, P, C, batch, classes): C % 4 != 0 takes the scalar kernel; P above 64 spans several
    // position chunks; C above 32 several channel blocks; n % batch != 0 a partial last batch.
    for &(n, p, c, batch, classes) in &[
        (1, 1, 1, 1, 0),
        (7, 13, 37, 3, 3),
        (5, 130, 68, 2, 4),
        (3, 197, 36, 2, 0),
        (4, 65, 5, 4, 2),
        (9, 3, 200, 4, 0),
        (2, 64, 3, 5, 0),
    ] {
        check_case(&gpu, &mut rng, n, p, c, batch, classes, &config);
    }
}

#[test]
fn predicates_and_custom_histograms() {
    let gpu = gpu();
    let mut rng = Rng::new(42);
    let configs = [
        StatsConfig {
            predicate: Predicate::AbsGt(0.5),
            ..Default::default()
        },
        // Power-of-two bins wider than 1 (x * scale underflows for the smallest denormals) and
        // an exact positive scale that is not an integer (2.5 = 2 + 0.5).
        StatsConfig {
            hist: LinearHistSpec {
                lo: -64.0,
                hi: 64.0,
                bins: 16,
            },
            hist_pos: PosHistSpec { hi: 4.0, bins: 10 },
            ..Default::default()
        },
        StatsConfig {
            predicate: Predicate::Gt(-1.0),
            hist: LinearHistSpec {
                lo: -3.0,
                hi: 7.0,
                bins: 37,
            },
            hist_pos: PosHistSpec { hi: 2.5, bins: 13 },
            ..Default::default()
        },
        StatsConfig {
            predicate: Predicate::Gt(1e-3),
            hist: LinearHistSpec {
                lo: 0.1,
                hi: 0.7,
                bins: 600,
            },
            hist_pos: PosHistSpec { hi: 1.0, bins: 3 },
            ..Default::default()
        },
        // A positive scale of three powers of two (100 = 64 + 32 + 4): Dekker's product.
        StatsConfig {
            hist_pos: PosHistSpec { hi: 1.0, bins: 100 },
            ..Default::default()
        },
    ];
    for config in &configs {
        check_case(&gpu, &mut rng, 5, 31, 44, 2, 0, config);
        check_case(&gpu, &mut rng, 3, 17, 9, 2, 2, config);
    }
}

/// Finite values up to f32::MAX: counts, histograms, min and max stay exact; the f32 sums of
/// (x - shift)^2 overflow, which the totals state (no mean or std) instead of a NaN.
#[test]
fn extreme_values_keep_counts_exact_and_flag_moments() {
    let gpu = gpu();
    let mut rng = Rng::new(47);
    let (n, p, c, batch) = (3, 20, 12, 2);
    let extremes = [
        f32::MAX,
        f32::MIN,
        1e38,
        -3e37,
        1e20,
        -1e25,
        f32::INFINITY,
        f32::NAN,
    ];
    let x: Vec<f32> = (0..n * p * c)
        .map(|i| {
            if i % 7 == 0 {
                extremes[rng.below(extremes.len())]
            } else {
                rng.uniform(-3.0, 3.0)
            }
        })
        .collect();
    let config = StatsConfig::default();
    let got = run_gpu(&gpu, &x, n, p, c, batch, None, &config, None, None);
    let want = reference_totals(&x, n, p, c, None, &config).unwrap();
    assert_counts_exact("extremes", &got.totals, &want);
    assert!(got.totals.moments_overflow);
    assert_eq!((got.totals.mean, got.totals.std), (None, None));
    assert_eq!(got.totals.max, Some(f32::MAX as f64));
    assert_eq!(got.totals.min, Some(f32::MIN as f64));
}

/// Over a million entries with |mean| >> std: naive f32 sums lose the std entirely; the
/// shifted, compensated sums must stay within 1e-6 relative of f64.
#[test]
fn moments_do_not_drift_over_many_entries() {
    let gpu = gpu();
    let mut rng = Rng::new(43);
    let (n, p, c, batch) = (40, 197, 160, 16);
    let x: Vec<f32> = (0..n * p * c)
        .map(|i| 1000.0 + (i % 13) as f32 * 0.01 + rng.uniform(-0.5, 0.5))
        .collect();
    let config = StatsConfig::default();
    let got = run_gpu(&gpu, &x, n, p, c, batch, None, &config, None, None);
    let want = reference_totals(&x, n, p, c, None, &config).unwrap();
    assert_totals("drift", &got.totals, &want);
    assert_pooled("drift", &got.pooled, &x, n, p, c);
}

/// The same data twice, and with other workgroup counts: identical counts, histograms and
/// bit-identical sums for a fixed workgroup count; identical counts for any.
#[test]
fn runs_are_deterministic() {
    let gpu = gpu();
    let mut rng = Rng::new(44);
    let (n, p, c, batch) = (6, 70, 24, 4);
    let config = StatsConfig {
        classes: 2,
        ..Default::default()
    };
    let mut x = activations(&mut rng, n, p, c, &config);
    moderate(&mut x);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 2).collect();
    let a = run_gpu(&gpu, &x, n, p, c, batch, Some(&labels), &config, None, None);
    let b = run_gpu(&gpu, &x, n, p, c, batch, Some(&labels), &config, None, None);
    assert_eq!(a.totals, b.totals, "two runs differ");
    assert_eq!(a.pooled, b.pooled);
    for groups in [1, 3, 1000] {
        let g = run_gpu(
            &gpu,
            &x,
            n,
            p,
            c,
            batch,
            Some(&labels),
            &config,
            Some(groups),
            None,
        );
        let mut gt = g.totals.clone();
        // Only the order of float additions depends on the workgroup count.
        gt.moments = a.totals.moments;
        gt.mean = a.totals.mean;
        gt.std = a.totals.std;
        gt.hoyer_moments = a.totals.hoyer_moments;
        gt.hoyer_mean = a.totals.hoyer_mean;
        gt.hoyer_std = a.totals.hoyer_std;
        assert_eq!(gt, a.totals, "{groups} workgroups");
        let want = reference_totals(&x, n, p, c, Some(&labels), &config).unwrap();
        assert_totals(&format!("{groups} workgroups"), &g.totals, &want);
    }
}

#[test]
fn bad_batches_are_refused_with_clear_errors() {
    let gpu = gpu();
    let info = tap_info(5, 8);
    let labelled = StatsConfig {
        classes: 3,
        ..Default::default()
    };
    let stats = TapStats::new(&gpu, &info, 4, &labelled).unwrap();
    let msg = |r: sparsescope::Result<()>| r.unwrap_err().to_string();
    assert!(msg(stats.set_batch(&gpu, 0, Some(&[]))).contains("0 valid images"));
    assert!(msg(stats.set_batch(&gpu, 5, Some(&[0; 5]))).contains("batch of 4"));
    assert!(msg(stats.set_batch(&gpu, 2, None)).contains("no labels"));
    assert!(msg(stats.set_batch(&gpu, 2, Some(&[0]))).contains("1 labels for 2 images"));
    assert!(msg(stats.set_batch(&gpu, 2, Some(&[0, 3]))).contains("label 3 of image 1"));
    let plain = TapStats::new(&gpu, &info, 4, &StatsConfig::default()).unwrap();
    assert!(msg(plain.set_batch(&gpu, 2, Some(&[0, 1]))).contains("without classes"));
    let small = gpu.zeros("small", &[3, 5, 8]).unwrap();
    assert!(plain.record(&gpu, &small).is_err());
    let huge = TapStats::new(
        &gpu,
        &tap_info(1 << 16, 1 << 10),
        64,
        &StatsConfig::default(),
    );
    assert!(huge.err().unwrap().to_string().contains("smaller --batch"));
    let many_bins = StatsConfig {
        hist: LinearHistSpec {
            lo: 0.0,
            hi: 1.0,
            bins: 600,
        },
        hist_pos: PosHistSpec { hi: 1.0, bins: 300 },
        ..Default::default()
    };
    let err = TapStats::new(&gpu, &info, 4, &many_bins)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("use at most 758 bins in the two together"),
        "{err}"
    );
    let too_many = StatsConfig {
        hist: LinearHistSpec {
            lo: 0.0,
            hi: 1.0,
            bins: 4096,
        },
        ..Default::default()
    };
    assert!(TapStats::new(&gpu, &info, 4, &too_many).is_err());
    assert_eq!(LOG_BINS, 128);
}

/// One workgroup asked for over 1.26 million entries: llvmpipe silently ends a shader's loops
/// after 65,535 iterations per invocation, which cut this pass to a quarter before the host
/// bounded the work per workgroup. Long per-lane sums of wide-range values also need the
/// compensated summation.
#[test]
fn long_passes_are_not_cut_short() {
    let gpu = gpu();
    let mut rng = Rng::new(45);
    let (n, p, c, batch) = (32, 197, 200, 32);
    let x: Vec<f32> = (0..n * p * c)
        .map(|_| rng.uniform(0.0, 2000.0) + if rng.below(2) == 0 { 1e4 } else { 0.0 })
        .collect();
    let config = StatsConfig::default();
    let got = run_gpu(&gpu, &x, n, p, c, batch, None, &config, Some(1), None);
    let want = reference_totals(&x, n, p, c, None, &config).unwrap();
    assert_totals("one workgroup asked", &got.totals, &want);
    assert_pooled("one workgroup asked", &got.pooled, &x, n, p, c);
}

/// CPU time of this process so far, in seconds: the sum over its threads (lavapipe's workers
/// included) of the run time in /proc/self/task/*/schedstat. On a CPU adapter this is the
/// work done, and much less disturbed by other processes than wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    ns as f64 * 1e-9
}

/// (wall, CPU) seconds per repetition of each of `plans`, timed interleaved after a warm-up run
/// (pipelines compile lazily); the minimum over `STATS_BENCH_SAMPLES` (default 5) runs of
/// `reps` repetitions.
fn seconds_per_run(gpu: &Gpu, plans: &[&[sparsescope::gpu::Step]], reps: usize) -> Vec<(f64, f64)> {
    let plans: Vec<Plan> = plans
        .iter()
        .map(|steps| Plan {
            steps: (0..reps).flat_map(|_| steps.iter().cloned()).collect(),
        })
        .collect();
    let mut best = vec![(f64::INFINITY, f64::INFINITY); plans.len()];
    for plan in &plans {
        plan.run(gpu).unwrap();
    }
    let samples = std::env::var("STATS_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for _ in 0..samples {
        for (plan, best) in plans.iter().zip(&mut best) {
            let (t, cpu) = (std::time::Instant::now(), cpu_seconds());
            plan.run(gpu).unwrap();
            let wall = t.elapsed().as_secs_f64() / reps as f64;
            let cpu = (cpu_seconds() - cpu) / reps as f64;
            *best = (best.0.min(wall), best.1.min(cpu));
        }
    }
    best
}

/// The cost of all default statistics of a tap next to the matmul that produces a tap of the
/// same size (ViT-B/16 at batch 8: the block output [8*197, 768] from a 768x768 projection, and
/// the MLP hidden [8*197, 3072] from fc1), measured in the same run. Prints the ratios.
/// Run: cargo test --release --test stats_kernels stats_cost -- --ignored --nocapture
#[test]
#[ignore]
fn stats_cost_vs_matmul() {
    use sparsescope::gpu::ops::{self, Act, Epilogue};
    let gpu = gpu();
    let mut rng = Rng::new(46);
    println!("adapter: {} ({:?})", gpu.info.name, gpu.info.device_type);
    let (b, p, k) = (8, 197, 768);
    let m = b * p;
    let a = gpu
        .upload("a", &[m, k], &rng.vec(m * k, -1.0, 1.0))
        .unwrap();
    let quick = std::env::var("STATS_BENCH_QUICK").is_ok();
    let shapes: &[(usize, &str)] = if quick {
        &[(768, "block output")]
    } else {
        &[(768, "block output"), (3072, "MLP hidden (GELU)")]
    };
    for &(c, what) in shapes {
        let w = gpu
            .upload("w", &[k, c], &rng.vec(k * c, -0.05, 0.05))
            .unwrap();
        let tap = gpu.zeros("tap", &[b, p, c]).unwrap();
        let mm = ops::matmul(
            &gpu,
            &a,
            k,
            &w,
            &tap,
            m,
            Epilogue {
                act: if c == 3072 { Act::Gelu } else { Act::None },
                ..Default::default()
            },
        )
        .unwrap();
        let mm_steps = vec![sparsescope::gpu::Step::Kernel(mm)];
        // The matmul's own output is realistic tap data (GELU: many small negatives).
        Plan {
            steps: mm_steps.clone(),
        }
        .run(&gpu)
        .unwrap();
        let info = tap_info(p, c);
        let config = StatsConfig::default();
        let items = b * p.div_ceil(64);
        let mut groups: Vec<Option<usize>> = if quick {
            vec![None]
        } else {
            vec![None, Some(2), Some(4), Some(8), Some(16)]
        };
        groups.push(Some(items));
        for g in groups {
            let stats = match g {
                Some(g) => TapStats::with_groups(&gpu, &info, b, &config, g),
                None => TapStats::new(&gpu, &info, b, &config),
            }
            .unwrap();
            let steps = stats.steps(&gpu, &tap, b, None).unwrap();
            let t = seconds_per_run(
                &gpu,
                &[&mm_steps, &steps, &steps[..1], &steps[1..2], &steps[2..3]],
                2,
            );
            if std::env::var("STATS_BENCH_DETAIL").is_ok() {
                println!(
                    "fold {:.3} ms wall {:.3} ms CPU; fold_channels {:.3} ms wall {:.3} ms CPU",
                    t[3].0 * 1e3,
                    t[3].1 * 1e3,
                    t[4].0 * 1e3,
                    t[4].1 * 1e3
                );
            }
            let (mm, st, tp) = (t[0], t[1], t[2]);
            println!(
                "[{b}x{p}, {c}] {what}, {} workgroups{}: matmul {:.1} ms wall, {:.1} ms CPU; \
                 stats {:.2} ms wall, {:.2} ms CPU (stats_tap {:.2} ms CPU) = {:.1}% of the \
                 matmul's CPU time ({:.1}% wall); {:.2} CPU-ns/entry",
                stats.groups(),
                if g.is_none() { ", default" } else { "" },
                mm.0 * 1e3,
                mm.1 * 1e3,
                st.0 * 1e3,
                st.1 * 1e3,
                tp.1 * 1e3,
                100.0 * st.1 / mm.1,
                100.0 * st.0 / mm.0,
                st.1 * 1e9 / (m * c) as f64
            );
        }
        if c == 768 {
            // The scalar-load kernel (C % 4 != 0) on the same data, seen as [B, P, 766].
            let odd = tap.view(&[b, p, c - 2]);
            let stats = TapStats::new(&gpu, &tap_info(p, c - 2), b, &config).unwrap();
            assert_eq!(stats.kernel(), "stats_tap_scalar");
            let steps = stats.steps(&gpu, &odd, b, None).unwrap();
            let t = seconds_per_run(&gpu, &[&mm_steps, &steps], 2);
            println!(
                "[{b}x{p}, {}] scalar loads: stats {:.2} ms CPU = {:.1}% of the {c}-column \
                 matmul's CPU time; {:.2} CPU-ns/entry",
                c - 2,
                t[1].1 * 1e3,
                100.0 * t[1].1 / t[0].1,
                t[1].1 * 1e9 / (m * (c - 2)) as f64
            );
        }
    }
}

/// The summary part of the totals: scalars, histogram edges and under/overflow; the arrays
/// (the `.npy` outputs) are left out.
#[test]
fn totals_serialise_their_scalar_part() {
    let gpu = gpu();
    let mut rng = Rng::new(48);
    let (n, p, c) = (3, 5, 8);
    let config = StatsConfig {
        classes: 2,
        ..Default::default()
    };
    let mut x = activations(&mut rng, n, p, c, &config);
    moderate(&mut x);
    let got = run_gpu(&gpu, &x, n, p, c, 2, Some(&[0, 1, 0]), &config, None, None);
    let json = serde_json::to_value(&got.totals).unwrap();
    for key in [
        "images",
        "entries",
        "predicate",
        "frac_active",
        "frac_nonzero",
        "nan_count",
        "mean",
        "std",
        "min",
        "max",
        "hoyer_mean",
        "dead_channels",
        "class_images",
        "moments_overflow",
    ] {
        assert!(json.get(key).is_some(), "summary lacks '{key}': {json}");
    }
    for array in [
        "firing_count",
        "firing_rate",
        "firing_rate_img",
        "active_images_by_class",
        "firing_rate_img_by_class",
    ] {
        assert!(
            json.get(array).is_none(),
            "summary holds the array '{array}'"
        );
    }
    assert_eq!(json["predicate"], "gt:0");
    let hist = &json["hist"];
    assert_eq!(hist["edges"].as_array().unwrap().len(), 257);
    assert!(hist.get("counts").is_none() && hist.get("underflow").is_some());
    assert_eq!(json["images"], 3);
}
