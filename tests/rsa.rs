//! RDM finalisation, RSA and ridge against the numpy/scipy fixtures of
//! `tests/golden/make_rsa_golden.py` (deterministic: compared to 1e-6 or exactly), and the
//! edge cases that must give a clear error rather than a NaN.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sparsescope::Error;
use sparsescope::analysis::SplitMix64;
use sparsescope::analysis::ridge::{Penalty, variance_explained_by_columns};
use sparsescope::analysis::rsa::{
    self, Method, bootstrap_ci, bootstrap_sample, permutation_test, rsa, rsa_matrix,
    test_permutations,
};
use sparsescope::npy::read_npy;
use sparsescope::rdm::{Gram, Measure, Rdm};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/rsa")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).unwrap()
}

fn load_rdm(name: &str) -> Rdm {
    let (shape, data) = read_npy::<f64>(dir().join(name)).unwrap();
    assert_eq!(shape.len(), 2, "{name}");
    Rdm::from_full(name, shape[0], data).unwrap()
}

fn method(name: &str) -> Method {
    Method::parse(name).unwrap()
}

#[test]
fn cpu_rdms_match_numpy() {
    let (shape, feats) = read_npy::<f32>(dir().join("features.npy")).unwrap();
    let gram = Gram::from_features(&feats, shape[0], shape[1]).unwrap();
    for m in Measure::ALL {
        let want = load_rdm(&format!("rdm_{}.npy", m.name()));
        let got = gram.rdm(m);
        let worst = got
            .as_slice()
            .iter()
            .zip(want.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-12, "{m:?}: max |diff| {worst:e}");
        // The conventions: a constant row (4) has correlation distance 1 to all; the zero row
        // (7) cosine distance 1; the duplicate rows (2, 10) distance 0 in every measure.
        for j in [0usize, 1, 3] {
            if m == Measure::Correlation {
                assert_eq!(got.get(4, j), 1.0);
            }
            if m == Measure::Cosine {
                assert_eq!(got.get(7, j), 1.0);
            }
        }
        assert!(
            got.get(2, 10).abs() < 1e-12,
            "{m:?} duplicate: {}",
            got.get(2, 10)
        );
    }
}

#[test]
fn rsa_statistics_match_scipy() {
    let m = manifest();
    for (name, case) in m["rsa"]["cases"].as_object().unwrap() {
        let a = load_rdm(&format!("rsa_{name}_a.npy"));
        let b = load_rdm(&format!("rsa_{name}_b.npy"));
        for meth in ["spearman", "pearson", "kendall"] {
            let got = rsa(&a, &b, method(meth)).unwrap();
            let want = case[meth].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-9,
                "{name} {meth}: {got} vs scipy/numpy {want}"
            );
        }
        // tau-a and scipy's default tau-b agree only without ties.
        let tau_b = case["kendall_tau_b_scipy"].as_f64().unwrap();
        let tau_a = case["kendall"].as_f64().unwrap();
        assert_eq!(
            name == "continuous",
            (tau_a - tau_b).abs() < 1e-12,
            "{name}"
        );
    }
}

#[test]
fn generator_streams_match_python() {
    let m = manifest();
    let perms: Vec<Vec<usize>> = test_permutations(9, 3, 42).collect();
    let want: Vec<Vec<usize>> =
        serde_json::from_value(m["rsa"]["first_permutations_n9_seed42"].clone()).unwrap();
    assert_eq!(perms, want);
    let draws: Vec<Vec<usize>> = (0..3).map(|k| bootstrap_sample(9, 7, k)).collect();
    let want: Vec<Vec<usize>> =
        serde_json::from_value(m["rsa"]["first_bootstrap_n9_seed7"].clone()).unwrap();
    assert_eq!(draws, want);
}

#[test]
fn permutation_p_values_match_python() {
    let m = manifest();
    let count = m["rsa"]["permutations"].as_u64().unwrap() as usize;
    let seed = m["rsa"]["permutation_seed"].as_u64().unwrap();
    for (name, case) in m["rsa"]["cases"].as_object().unwrap() {
        let a = load_rdm(&format!("rsa_{name}_a.npy"));
        let b = load_rdm(&format!("rsa_{name}_b.npy"));
        for meth in ["spearman", "pearson", "kendall"] {
            let want = &case["permutation"][meth];
            let got = permutation_test(&a, &b, method(meth), count, seed).unwrap();
            assert_eq!(
                got.exceed as u64,
                want["exceed"].as_u64().unwrap(),
                "{name} {meth}: permuted statistics >= observed"
            );
            assert!((got.p_value - want["p_value"].as_f64().unwrap()).abs() < 1e-12);
            assert!((got.observed - want["observed"].as_f64().unwrap()).abs() < 1e-9);
        }
    }
}

#[test]
fn bootstrap_intervals_match_python() {
    let m = manifest();
    let samples = m["rsa"]["bootstrap_samples"].as_u64().unwrap() as usize;
    let level = m["rsa"]["bootstrap_level"].as_f64().unwrap();
    let seed = m["rsa"]["bootstrap_seed"].as_u64().unwrap();
    for (name, case) in m["rsa"]["cases"].as_object().unwrap() {
        let a = load_rdm(&format!("rsa_{name}_a.npy"));
        let b = load_rdm(&format!("rsa_{name}_b.npy"));
        for meth in ["spearman", "pearson", "kendall"] {
            let want = &case["bootstrap"][meth];
            let got = bootstrap_ci(&a, &b, method(meth), samples, level, seed).unwrap();
            assert_eq!(
                got.valid as u64,
                want["valid"].as_u64().unwrap(),
                "{name} {meth}"
            );
            for (g, key) in [(got.low, "low"), (got.high, "high")] {
                let w = want[key].as_f64().unwrap();
                assert!((g - w).abs() < 1e-6, "{name} {meth} {key}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn ridge_loo_matches_refits() {
    let m = manifest();
    for (name, case) in m["ridge"]["cases"].as_object().unwrap() {
        let (shape, feats) =
            read_npy::<f32>(dir().join(case["features"].as_str().unwrap())).unwrap();
        let dropped: Vec<usize> = serde_json::from_value(case["dropped"].clone()).unwrap();
        let got = variance_explained_by_columns(
            &feats,
            shape[0],
            shape[1],
            &dropped,
            &Penalty::default(),
        )
        .unwrap();
        let want = case["r2"].as_f64().unwrap();
        assert_eq!(got.alpha, case["alpha"].as_f64().unwrap(), "{name}: alpha");
        assert!(
            (got.r2 - want).abs() < 1e-6,
            "{name}: R^2 {} vs {want}",
            got.r2
        );
        assert_eq!(
            got.form,
            if shape[0] > dropped.len() {
                "primal"
            } else {
                "dual"
            }
        );
    }
}

#[test]
fn rsa_matrix_is_symmetric_with_unit_diagonal() {
    let a = load_rdm("rsa_continuous_a.npy");
    let b = load_rdm("rsa_continuous_b.npy");
    let c = load_rdm("rsa_ties_b.npy");
    let mat = rsa_matrix(&["a", "b", "c"], &[&a, &b, &c], Method::Spearman).unwrap();
    for i in 0..3 {
        assert_eq!(mat[i * 3 + i], 1.0);
        for j in 0..3 {
            assert_eq!(mat[i * 3 + j], mat[j * 3 + i]);
        }
    }
    assert!((mat[1] - rsa(&a, &b, Method::Spearman).unwrap()).abs() < 1e-15);
}

fn undefined(e: Error) -> String {
    match e {
        Error::Undefined { .. } | Error::Shape { .. } => e.to_string(),
        other => panic!("unexpected error kind: {other}"),
    }
}

#[test]
fn edge_cases_give_clear_errors() {
    let a = load_rdm("rsa_continuous_a.npy");
    // A constant RDM.
    let flat = Rdm::from_upper(10, &vec![0.5; 45]).unwrap();
    for meth in Method::ALL {
        let msg = undefined(rsa(&a, &flat, meth).unwrap_err());
        assert!(msg.contains("second RDM") && msg.contains("equal"), "{msg}");
        let msg = undefined(permutation_test(&flat, &a, meth, 10, 1).unwrap_err());
        assert!(msg.contains("first RDM"), "{msg}");
    }
    // Two images: one dissimilarity, no correlation.
    let two = Rdm::from_upper(2, &[1.0]).unwrap();
    let msg = undefined(rsa(&two, &two, Method::Spearman).unwrap_err());
    assert!(msg.contains("3 images"), "{msg}");
    // Mismatched sizes.
    let small = Rdm::from_upper(4, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let msg = undefined(rsa(&a, &small, Method::Pearson).unwrap_err());
    assert!(msg.contains("10 and 4 images"), "{msg}");
    let msg = undefined(
        rsa::rsa_cross(&["a"], &[&a], &["small"], &[&small], Method::Pearson).unwrap_err(),
    );
    assert!(msg.contains("images"), "{msg}");
    // An external matrix that is not an RDM.
    let mut bad = a.as_slice().to_vec();
    bad[1] += 1.0;
    assert!(
        Rdm::from_full("human.npy", 10, bad)
            .unwrap_err()
            .to_string()
            .contains("not symmetric")
    );
    assert!(Rdm::from_full("human.npy", 9, vec![0.0; 100]).is_err());
    // Ridge: two images, constant targets.
    let msg = undefined(
        variance_explained_by_columns(&[1.0, 2.0, 3.0, 4.0], 2, 2, &[0], &Penalty::default())
            .unwrap_err(),
    );
    assert!(msg.contains("3 or more"), "{msg}");
    let msg = undefined(
        variance_explained_by_columns(&[1.0; 12], 4, 3, &[0], &Penalty::default()).unwrap_err(),
    );
    assert!(msg.contains("no variance"), "{msg}");
    // One channel, dropped: R^2 is defined (slightly negative: the LOO intercept-only fit).
    let one = [1.0f32, 2.0, 4.0, 3.0, 5.0];
    let r = variance_explained_by_columns(&one, 5, 1, &[0], &Penalty::default()).unwrap();
    assert!(r.r2.is_finite() && r.r2 > 0.5, "{r:?}");
}

/// N = 1500 (1,124,250 entries): the statistic, a permutation test and a bootstrap must stay
/// fast (ranks reused, no per-permutation sort for Spearman), and agree with the definitions.
#[test]
fn large_rdms_are_fast() {
    let n = 1500;
    let mut g = SplitMix64::new(5);
    let pts: Vec<f32> = (0..n * 8)
        .map(|_| (g.next_u64() >> 40) as f32 / 16_777_216.0)
        .collect();
    let noisy: Vec<f32> = pts
        .iter()
        .map(|&v| v + 0.2 * ((g.next_u64() >> 40) as f32 / 16_777_216.0))
        .collect();
    let a = Gram::from_features(&pts, n, 8)
        .unwrap()
        .rdm(Measure::Euclidean);
    let b = Gram::from_features(&noisy, n, 8)
        .unwrap()
        .rdm(Measure::Euclidean);
    let t = std::time::Instant::now();
    let r = rsa(&a, &b, Method::Spearman).unwrap();
    let t1 = t.elapsed().as_secs_f64();
    let p = permutation_test(&a, &b, Method::Spearman, 20, 3).unwrap();
    let t2 = t.elapsed().as_secs_f64();
    let ci = bootstrap_ci(&a, &b, Method::Spearman, 20, 0.95, 3).unwrap();
    let t3 = t.elapsed().as_secs_f64();
    let tau = rsa(&a, &b, Method::KendallTauA).unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    eprintln!(
        "rsa {t1:.2} perm {:.2} boot {:.2} tau {:.2}",
        t2 - t1,
        t3 - t2,
        elapsed - t3
    );
    eprintln!(
        "N = {n}: spearman {r:.4} (p {}, CI [{:.4}, {:.4}]), tau-a {tau:.4} in {elapsed:.2} s",
        p.p_value, ci.low, ci.high
    );
    assert!(r > 0.5 && p.p_value < 0.05 && ci.low < r && r < ci.high);
    assert!(tau > 0.3 && tau < r);
    // Generous for a 2-core debug-profile CI machine; about a second in release.
    assert!(elapsed < 60.0, "{elapsed} s");
}
