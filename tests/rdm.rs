//! The streaming GPU Gram accumulator behind the flat RDMs: exact mode against the CPU f64
//! reference and the numpy fixtures, sketch mode against a CPU sketch with the same seeded
//! matrix and against exact mode within the error the summary states; several batches with a
//! partial last one, stores split over many buffers, both Gram kernels.

// `!(x <= y)` on purpose: a NaN must count as the worst error.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use sparsescope::gpu::{Gpu, Plan, Step, drop_repeated_copies};
use sparsescope::model::{TapInfo, TapKind};
use sparsescope::npy::read_npy;
use sparsescope::rdm::{
    FlatMode, Gram, GramAccumulator, GramSource, GramVariant, Measure, Rdm, plan_flat_modes,
    sketch_bucket, sketch_sign, stream_rdms,
};
use sparsescope::stats::{StatsConfig, TapRead, TapStats};
use support::{Rng, gpu};

/// Structured features like a tap's (a few shared factors, ReLU, per-image offsets), with a
/// constant row, a zero row and an exact duplicate.
fn features(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let basis: Vec<f32> = rng.vec(3 * d, -1.0, 1.0);
    let mut x = vec![0.0f32; n * d];
    for i in 0..n {
        let w = rng.vec(3, -1.0, 1.0);
        let offset = rng.uniform(0.0, 1.5);
        for k in 0..d {
            let v = w[0] * basis[k]
                + w[1] * basis[d + k]
                + w[2] * basis[2 * d + k]
                + 0.4 * rng.uniform(-1.0, 1.0);
            x[i * d + k] = v.max(0.0) + offset;
        }
    }
    if n > 10 {
        x[3 * d..4 * d].fill(0.3);
        x[5 * d..6 * d].fill(0.0);
        let dup = x[d..2 * d].to_vec();
        x[9 * d..10 * d].copy_from_slice(&dup);
    }
    x
}

/// Feed `x` ([n, d]) through the accumulator in batches of `batch` rows, the last one partial;
/// rows of the batch buffer past the valid ones hold junk that must be ignored.
fn accumulate(
    gpu: &Gpu,
    acc: &mut GramAccumulator,
    x: &[f32],
    n: usize,
    d: usize,
    batch: usize,
) -> Gram {
    let input = gpu.zeros("batch", &[batch, d]).unwrap();
    for start in (0..n).step_by(batch) {
        let rows = batch.min(n - start);
        let mut data = vec![1.0e6f32; batch * d];
        data[..rows * d].copy_from_slice(&x[start * d..(start + rows) * d]);
        gpu.write(&input, &data);
        acc.accumulate(gpu, &input, rows).unwrap();
    }
    acc.finish(gpu).unwrap()
}

/// Largest |got - want| / (atol + rtol |want|) over the upper triangle; <= 1 passes.
fn worst(got: &Rdm, want: &Rdm, atol: f64, rtol: f64) -> (f64, usize, usize) {
    let n = want.n();
    let mut w = (0.0, 0, 0);
    for i in 0..n {
        for j in i + 1..n {
            let e = (got.get(i, j) - want.get(i, j)).abs() / (atol + rtol * want.get(i, j).abs());
            if !(e <= w.0) {
                w = (e, i, j);
            }
        }
    }
    w
}

/// `got` within tolerance of `want`: correlation and cosine distances, which are O(1), to
/// `atol`; squared euclidean distances to `rtol` relative (plus `euclid_atol`).
fn assert_rdm_close(what: &str, m: Measure, got: &Rdm, want: &Rdm, atol: f64, euclid: (f64, f64)) {
    let (atol, rtol) = if m == Measure::Euclidean {
        euclid
    } else {
        (atol, 0.0)
    };
    let (e, i, j) = worst(got, want, atol, rtol);
    assert!(
        e <= 1.0,
        "{what} {m:?} ({i}, {j}): {} vs {}",
        got.get(i, j),
        want.get(i, j)
    );
}

fn assert_rdms_close(what: &str, got: &Gram, want: &Gram, rtol: f64) {
    for m in Measure::ALL {
        let (g, w) = (got.rdm(m), want.rdm(m));
        // Correlation and cosine distances are O(1): absolute; euclidean: relative.
        let (atol, rt) = match m {
            Measure::Euclidean => (1e-12, rtol),
            _ => (rtol, 0.0),
        };
        let (e, i, j) = worst(&g, &w, atol, rt);
        assert!(
            e <= 1.0,
            "{what} {m:?}: entry ({i}, {j}) is {} on the GPU, {} on the CPU",
            g.get(i, j),
            w.get(i, j)
        );
        for i in 0..g.n() {
            assert_eq!(g.get(i, i), 0.0);
        }
    }
}

fn variants(gpu: &Gpu, width: usize) -> Vec<GramVariant> {
    [GramVariant::Tiled, GramVariant::Subgroup]
        .into_iter()
        .filter(|v| v.unsupported(gpu, width).is_none())
        .collect()
}

#[test]
fn exact_mode_matches_cpu_f64() {
    let gpu = gpu();
    // D = 1000 (vec4 rows), 1001 (odd, tiled only), 2053 (several 512-runs plus a tail).
    for (n, d, batch) in [
        (29usize, 1000usize, 8usize),
        (23, 1001, 5),
        (13, 2052, 13),
        (17, 2053, 4),
    ] {
        let x = features(n, d, d as u64);
        let want = Gram::from_features(&x, n, d).unwrap();
        for variant in variants(&gpu, d) {
            let mut acc =
                GramAccumulator::with_variant(&gpu, FlatMode::Exact, variant, d, n + 3, batch)
                    .unwrap();
            let got = accumulate(&gpu, &mut acc, &x, n, d, batch);
            assert_eq!(got.n(), n);
            assert_rdms_close(
                &format!("N {n} D {d} batch {batch} {variant:?}"),
                &got,
                &want,
                1e-5,
            );
            let means = got.means();
            for (i, (g, w)) in means.iter().zip(want.means()).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "mean {i}: {g} vs {w}"
                );
            }
        }
    }
    assert!(
        !variants(&gpu, 1000).is_empty() && GramVariant::Tiled.unsupported(&gpu, 1001).is_none()
    );
}

#[test]
fn exact_mode_matches_numpy_fixture() {
    let gpu = gpu();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/rsa");
    let (shape, x) = read_npy::<f32>(dir.join("features.npy")).unwrap();
    let (n, d) = (shape[0], shape[1]);
    for variant in variants(&gpu, d) {
        let mut acc =
            GramAccumulator::with_variant(&gpu, FlatMode::Exact, variant, d, n, 5).unwrap();
        let got = accumulate(&gpu, &mut acc, &x, n, d, 5);
        for m in Measure::ALL {
            let (s, v) = read_npy::<f64>(dir.join(format!("rdm_{}.npy", m.name()))).unwrap();
            let want = Rdm::from_full("numpy", s[0], v).unwrap();
            let what = format!("{variant:?} against numpy:");
            assert_rdm_close(&what, m, &got.rdm(m), &want, 1e-5, (1e-6, 1e-5));
        }
        // The conventions survive the f32 GPU sums: the constant row (4) and the zero row (7).
        let corr = got.rdm(Measure::Correlation);
        let cos = got.rdm(Measure::Cosine);
        for j in [0, 1, 3] {
            assert_eq!(corr.get(4, j), 1.0);
            assert_eq!(cos.get(7, j), 1.0);
        }
    }
}

/// Rows longer than one Gram workgroup covers (split K; llvmpipe ends loops after 65,535
/// iterations per invocation, so a kernel without splits would silently stop early).
#[test]
fn wide_rows_are_split_and_exact() {
    let gpu = gpu();
    let n = 6;
    for d in [300_000usize, 300_001] {
        let x = features(n, d, 31);
        let want = Gram::from_features(&x, n, d).unwrap();
        for variant in variants(&gpu, d) {
            let mut acc =
                GramAccumulator::with_variant(&gpu, FlatMode::Exact, variant, d, n, 4).unwrap();
            let got = accumulate(&gpu, &mut acc, &x, n, d, 4);
            assert_rdms_close(&format!("D {d} {variant:?}"), &got, &want, 1e-5);
        }
        let mode = FlatMode::Sketch { dim: 64, seed: 9 };
        let mut acc = GramAccumulator::new(&gpu, mode, d, n, 4).unwrap();
        let got = accumulate(&gpu, &mut acc, &x, n, d, 4);
        let dec = (got.decorrelation().unwrap() - want.decorrelation().unwrap()).abs();
        assert!(
            dec < acc.expected_error(),
            "D {d}: sketched decorrelation off by {dec}"
        );
    }
}

/// Stores split over many small buffers, with batches and blocks straddling them: every entry
/// is the same dot product whichever buffer and block it comes from, so the RDMs are identical
/// bit for bit to those of one whole buffer.
#[test]
fn chunked_buffers_give_the_same_result() {
    let gpu = gpu();
    let (n, d, batch) = (37, 32, 6);
    let x = features(n, d, 99);
    let want = Gram::from_features(&x, n, d).unwrap();
    for variant in variants(&gpu, d) {
        for mode in [FlatMode::Exact, FlatMode::Sketch { dim: 64, seed: 5 }] {
            // 256 bytes: two rows of the store per buffer, one row per block.
            let mut small =
                GramAccumulator::with_options(&gpu, mode, variant, d, n, batch, 256).unwrap();
            let mut whole =
                GramAccumulator::with_variant(&gpu, mode, variant, d, n, batch).unwrap();
            let a = accumulate(&gpu, &mut small, &x, n, d, batch);
            let b = accumulate(&gpu, &mut whole, &x, n, d, batch);
            for m in Measure::ALL {
                assert_eq!(a.rdm(m), b.rdm(m), "{mode:?} {variant:?} {m:?}");
            }
            if mode == FlatMode::Exact {
                assert_rdms_close(&format!("chunked exact {variant:?}"), &a, &want, 1e-5);
            }
        }
    }
}

/// `stream_rdms` over the GPU source in blocks of a few rows: every block of every measure
/// arrives in order, the streamed RDM equals the gathered Gram's, is exactly symmetric with a
/// zero diagonal, an exact duplicate image is at distance exactly 0, and the decorrelation is
/// the mean of the correlation RDM over pairs.
#[test]
fn streamed_rdms_are_exact_symmetric_and_complete() {
    let gpu = gpu();
    let (n, d, batch) = (29, 40, 8);
    let x = features(n, d, 17);
    for variant in variants(&gpu, d) {
        for mode in [FlatMode::Exact, FlatMode::Sketch { dim: 32, seed: 9 }] {
            // 1 KiB buffers: blocks of 6 rows (29 x 4 bytes of products per row).
            let mut acc =
                GramAccumulator::with_options(&gpu, mode, variant, d, n, batch, 1024).unwrap();
            let gram = accumulate(&gpu, &mut acc, &x, n, d, batch);
            let mut source = acc.source(&gpu).unwrap();
            assert!(source.block_rows() < n, "{}", source.block_rows());
            let mut streamed: Vec<Vec<f64>> = vec![Vec::new(); Measure::ALL.len()];
            let mut order = Vec::new();
            let mean = stream_rdms(&mut source, &Measure::ALL, &mut |k, rows| {
                order.push(k);
                assert_eq!(rows.len() % n, 0);
                streamed[k].extend_from_slice(rows);
                Ok(())
            })
            .unwrap()
            .unwrap();
            assert_eq!(order.len(), 3 * n.div_ceil(source.block_rows()));
            for (k, m) in Measure::ALL.into_iter().enumerate() {
                let what = format!("{mode:?} {variant:?} {m:?}");
                let full = gram.rdm(m);
                assert_eq!(streamed[k], full.as_slice(), "{what}");
                for i in 0..n {
                    assert_eq!(full.get(i, i), 0.0, "{what}");
                    for j in 0..i {
                        assert_eq!(full.get(i, j).to_bits(), full.get(j, i).to_bits(), "{what}");
                    }
                }
                if m != Measure::Euclidean || mode == FlatMode::Exact {
                    // Rows 1 and 9 are the same image.
                    assert_eq!(full.get(1, 9), 0.0, "{what}: duplicate images");
                }
            }
            let want = gram.rdm(Measure::Correlation).mean_upper().unwrap();
            assert_eq!(mean, want, "{mode:?} {variant:?} decorrelation");
        }
    }
}

/// The sketch of a CPU reference that uses the same seeded buckets and signs
/// (`sketch_bucket`, `sketch_sign`): the sketched RDMs are the exact RDMs of the projected
/// vectors S x (cosine, euclidean) and S (x - mean) (correlation).
#[test]
fn sketch_mode_matches_cpu_projection() {
    let gpu = gpu();
    // D = 300 with k = 96: three full blocks and a partial one; D = 301 also leaves the rows
    // unaligned for vec4 loads (the scalar kernels). k = 1096 takes the kernel's bucket quads
    // in two passes (256 + 18 of 274), and D = 76,728 = 70 k + 8 makes more blocks than one
    // run of sums (64) and a partial last block; k = 1024 is the default's one full pass.
    for (d, k) in [
        (300usize, 96usize),
        (301, 96),
        (76_728, 1096),
        (20_000, 1024),
    ] {
        let (n, seed) = (19, 0xDEAD_BEEF_1234_5678u64);
        let x = features(n, d, 7);
        let mut raw = vec![0.0f32; n * k];
        let mut centred = vec![0.0f32; n * k];
        for i in 0..n {
            let row: Vec<f64> = x[i * d..(i + 1) * d].iter().map(|&v| v as f64).collect();
            let mean = row.iter().sum::<f64>() / d as f64;
            let (mut s, mut sc) = (vec![0.0f64; k], vec![0.0f64; k]);
            for (e, v) in row.iter().enumerate() {
                let (b, sign) = (sketch_bucket(seed, e, k), sketch_sign(seed, e));
                s[b] += sign * v;
                sc[b] += sign * (v - mean);
            }
            for j in 0..k {
                raw[i * k + j] = s[j] as f32;
                centred[i * k + j] = sc[j] as f32;
            }
        }
        let raw_ref = Gram::from_features(&raw, n, k).unwrap();
        let centred_ref = Gram::from_features(&centred, n, k).unwrap();
        // Rows read from their buffer and (D % 4 == 0) from a texture copy.
        let reads: &[bool] = if d % 4 == 0 { &[false, true] } else { &[false] };
        for (variant, &textures) in variants(&gpu, k)
            .into_iter()
            .flat_map(|v| reads.iter().map(move |t| (v, t)))
        {
            let mode = FlatMode::Sketch { dim: k, seed };
            let mut acc = GramAccumulator::with_variant(&gpu, mode, variant, d, n, 4).unwrap();
            acc.set_texture_reads(textures);
            let got = accumulate(&gpu, &mut acc, &x, n, d, 4);
            assert_eq!(got.sketch_dim(), Some(k));
            // Correlation: cosine of the centred sketches (the reference vectors have mean ~0 but
            // not exactly, so compare with their cosine, not their correlation).
            let pairs = [
                (Measure::Correlation, centred_ref.rdm(Measure::Cosine)),
                (Measure::Cosine, raw_ref.rdm(Measure::Cosine)),
                (Measure::Euclidean, raw_ref.rdm(Measure::Euclidean)),
            ];
            for (m, want) in pairs {
                let what = format!("D {d} {variant:?} textures {textures} against the CPU sketch:");
                assert_rdm_close(&what, m, &got.rdm(m), &want, 2e-5, (1e-9, 1e-5));
            }
        }
    }
}

/// Sketch against exact on one case that fits both: the error stays within the bound that
/// `expected_error` states, a bound on the standard deviation over sketches (seeds) of each
/// inner product of unit vectors: sqrt(2/k). One sketch's errors are correlated across pairs
/// (they share the sketch), so its mean error is one draw: each seed must stay below 3x the
/// bound, and the mean absolute error over 12 seeds, which estimates E|error| <= std, below it.
#[test]
fn sketch_error_within_stated_bound() {
    let gpu = gpu();
    let (n, d, batch) = (40, 6000, 7);
    let x = features(n, d, 2024);
    let want = Gram::from_features(&x, n, d).unwrap();
    let mut exact = GramAccumulator::new(&gpu, FlatMode::Exact, d, n, batch).unwrap();
    let got_exact = accumulate(&gpu, &mut exact, &x, n, d, batch);
    assert_rdms_close("exact", &got_exact, &want, 1e-5);
    let exact_rdms: Vec<Vec<f64>> = Measure::ALL
        .iter()
        .map(|&m| got_exact.rdm(m).upper())
        .collect();
    for k in [128usize, 512] {
        let seeds = 12;
        let mut mean_err = [0.0f64; 3];
        let mut bound = 0.0;
        for seed in 0..seeds {
            let mode = FlatMode::Sketch {
                dim: k,
                seed: 1000 + seed,
            };
            let mut acc = GramAccumulator::new(&gpu, mode, d, n, batch).unwrap();
            let got = accumulate(&gpu, &mut acc, &x, n, d, batch);
            bound = acc.expected_error();
            assert_eq!(bound, (2.0 / k as f64).sqrt());
            for (mi, m) in Measure::ALL.into_iter().enumerate() {
                let g = got.rdm(m).upper();
                let w = &exact_rdms[mi];
                // Correlation and cosine: absolute error of the entry (a cosine of unit
                // vectors); euclidean: relative error of the squared distance.
                let errs: Vec<f64> = g
                    .iter()
                    .zip(w)
                    .filter(|(_, b)| m != Measure::Euclidean || **b > 0.0)
                    .map(|(a, b)| match m {
                        Measure::Euclidean => (a * a / (b * b) - 1.0).abs(),
                        _ => (a - b).abs(),
                    })
                    .collect();
                let mean = errs.iter().sum::<f64>() / errs.len() as f64;
                assert!(
                    mean < 3.0 * bound,
                    "k {k} seed {seed} {m:?}: mean |error| {mean} over 3 x {bound}"
                );
                mean_err[mi] += mean / seeds as f64;
            }
            // Decorrelation by depth from the sketch.
            let dec = (got.decorrelation().unwrap() - got_exact.decorrelation().unwrap()).abs();
            assert!(dec < bound, "decorrelation differs by {dec}");
        }
        for (mi, m) in Measure::ALL.into_iter().enumerate() {
            eprintln!(
                "k {k} {m:?}: mean |error| over {seeds} seeds {:.4}, stated {bound:.4}",
                mean_err[mi]
            );
            assert!(
                mean_err[mi] < bound,
                "k {k} {m:?}: {} over the stated {bound}",
                mean_err[mi]
            );
        }
    }
}

#[test]
fn runs_are_deterministic_and_capacity_is_enforced() {
    let gpu = gpu();
    let (n, d) = (11, 64);
    let x = features(n, d, 3);
    let run = |mode| {
        let mut acc = GramAccumulator::new(&gpu, mode, d, n, 4).unwrap();
        accumulate(&gpu, &mut acc, &x, n, d, 4).rdm(Measure::Correlation)
    };
    for mode in [FlatMode::Exact, FlatMode::Sketch { dim: 64, seed: 1 }] {
        assert_eq!(run(mode), run(mode), "{mode:?}");
    }
    let mut acc = GramAccumulator::new(&gpu, FlatMode::Exact, d, 5, 4).unwrap();
    let input = gpu.zeros("batch", &[4, d]).unwrap();
    acc.accumulate(&gpu, &input, 4).unwrap();
    let err = acc.accumulate(&gpu, &input, 4).unwrap_err().to_string();
    assert!(err.contains("sized for 5 images"), "{err}");
    let err = GramAccumulator::new(&gpu, FlatMode::Sketch { dim: 102, seed: 0 }, d, 5, 4)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("multiple of 4"), "{err}");
}

#[test]
fn budget_planning_prefers_exact_for_small_taps() {
    let dims = [1000usize, 50_000, 200, 600_000];
    let (cap, batch, k) = (100, 8, 256);
    let exact = |d| GramAccumulator::bytes(FlatMode::Exact, d, cap, batch);
    let sketch = |d| GramAccumulator::bytes(FlatMode::Sketch { dim: k, seed: 0 }, d, cap, batch);
    let sketches: u64 = dims.iter().map(|&d| sketch(d)).sum();
    // Room for the two smallest taps exactly.
    // D = 200 < k: exact is smaller than the sketch and costs nothing extra.
    let extra = |d| exact(d).saturating_sub(sketch(d));
    assert_eq!(extra(200), 0);
    let budget = sketches + extra(1000) + 10;
    let modes = plan_flat_modes(budget, cap, batch, &dims, k, 0);
    assert_eq!(modes[0], FlatMode::Exact);
    assert_eq!(modes[2], FlatMode::Exact);
    assert!(matches!(modes[1], FlatMode::Sketch { dim: 256, .. }));
    assert!(matches!(modes[3], FlatMode::Sketch { dim: 256, .. }));
    let all = plan_flat_modes(u64::MAX, cap, batch, &dims, k, 0);
    assert!(all.iter().all(|m| *m == FlatMode::Exact));
}

/// A tap's statistics and its sketch read one texture copy of the tap: `drop_repeated_copies`
/// keeps the statistics' copy and drops the sketch's. Over three batches of different values
/// the shared steps must give the sketch's Gram and the statistics bit for bit as steps with a
/// copy each do (a dropped copy that left stale texels, or the wrong one dropped, would not).
#[test]
fn tap_statistics_and_sketch_share_one_texture_copy() {
    let gpu = gpu();
    let (n, p, c, batch) = (12, 30, 16, 4);
    let d = p * c;
    let x = features(n, d, 11);
    let info = TapInfo {
        name: "tap".into(),
        kind: TapKind::Hidden,
        depth: 0,
        positions: p,
        channels: c,
    };
    let config = StatsConfig::default();
    let mode = FlatMode::Sketch { dim: 96, seed: 5 };
    let new_stats =
        || TapStats::with_read(&gpu, &info, batch, &config, 3, TapRead::Texture).unwrap();
    let new_sketch = || {
        let mut acc = GramAccumulator::new(&gpu, mode, d, n, batch).unwrap();
        acc.set_texture_reads(true);
        acc
    };
    let (shared_stats, mut shared_sketch) = (new_stats(), new_sketch());
    let (own_stats, mut own_sketch) = (new_stats(), new_sketch());
    let tap = gpu.zeros("tap", &[batch, p, c]).unwrap();
    for start in (0..n).step_by(batch) {
        gpu.write(&tap, &x[start * d..(start + batch) * d]);
        let mut shared = shared_stats.steps(&gpu, &tap, batch, None).unwrap();
        shared_sketch.begin_batch(&gpu, batch).unwrap();
        shared.extend(shared_sketch.steps(&gpu, &tap).unwrap());
        drop_repeated_copies(&mut shared);
        let copying: Vec<&str> = shared
            .iter()
            .filter_map(|s| match s {
                Step::Kernel(k) if k.has_copies() => Some(k.kernel),
                _ => None,
            })
            .collect();
        assert_eq!(copying, ["stats_tap_texture"], "kernels that copy the tap");
        let sketched = shared
            .iter()
            .any(|s| matches!(s, Step::Kernel(k) if k.kernel == "rdm_sketch_texture"));
        assert!(sketched, "the sketch reads the texture");
        Plan { steps: shared }.run(&gpu).unwrap();

        let mut own = own_stats.steps(&gpu, &tap, batch, None).unwrap();
        own_sketch.begin_batch(&gpu, batch).unwrap();
        own.extend(own_sketch.steps(&gpu, &tap).unwrap());
        Plan { steps: own }.run(&gpu).unwrap();
    }
    assert_eq!(
        shared_stats.finish(&gpu).unwrap(),
        own_stats.finish(&gpu).unwrap(),
        "statistics"
    );
    let (a, b) = (
        shared_sketch.finish(&gpu).unwrap(),
        own_sketch.finish(&gpu).unwrap(),
    );
    for m in Measure::ALL {
        let (ga, gb) = (a.rdm(m).upper(), b.rdm(m).upper());
        assert!(
            ga.iter().zip(&gb).all(|(u, v)| u.to_bits() == v.to_bits()),
            "{m:?} RDM of the shared copy differs"
        );
    }
}
