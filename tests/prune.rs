//! `sparsescope prune`: the channel-group machinery (Gram::concat, the gather kernel), the
//! pooled curves, random baseline, leave-one-out R^2 and per-class silent channels of synthetic
//! runs against references written from the definitions, the errors a user meets, and one
//! end-to-end run -> rsa -> prune on the bundled EfficientNet-Lite0 whose flat curves (from the
//! second GPU pass) are checked against activations extracted by `extract`.

mod support;
mod synthetic_run;

use std::path::Path;

use sparsescope::analysis::prune::{
    PERCENTS, drop_order, dropped_count, level_groups, random_order,
};
use sparsescope::analysis::ridge::DEFAULT_ALPHAS;
use sparsescope::gpu::Plan;
use sparsescope::gpu::ops::gather::gather_channels;
use sparsescope::npy::read_npy;
use sparsescope::rdm::{Gram, Measure};
use support::gpu;
use synthetic_run::*;

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn gram_concat_equals_the_gram_of_the_concatenation() {
    let (n, d) = (9usize, 23usize);
    let mut rng = Rng::new(1);
    // A large common offset makes the shifts matter: a raw-sum combination would lose digits.
    let x: Vec<f32> = (0..n * d)
        .map(|k| (100.0 + (k % d) as f64 * 0.01 + rng.unit()) as f32)
        .collect();
    let groups: Vec<Vec<usize>> = vec![
        vec![3],
        (4..15).collect(),
        vec![0, 1, 2],
        (15..23).collect(),
    ];
    let parts: Vec<Gram> = groups
        .iter()
        .map(|g| {
            let cols: Vec<f32> = (0..n)
                .flat_map(|i| g.iter().map(move |&k| (i, k)))
                .map(|(i, k)| x[i * d + k])
                .collect();
            Gram::from_features(&cols, n, g.len()).unwrap()
        })
        .collect();
    let whole = Gram::concat(&parts.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(whole.dim(), d);
    let direct = Gram::from_features(&x, n, d).unwrap();
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for m in Measure::ALL {
        let a = whole.rdm(m);
        let b = direct.rdm(m);
        let worst = max_diff(a.as_slice(), b.as_slice());
        assert!(worst < 1e-10, "{m:?}: {worst:e}");
    }
    let worst = max_diff(
        whole.rdm(Measure::Correlation).as_slice(),
        &corr_rdm(&x64, n, d),
    );
    assert!(worst < 1e-10, "vs reference: {worst:e}");
    // Means over the union, not over any part.
    for (got, i) in whole.means().iter().zip(0..n) {
        let want = x64[i * d..(i + 1) * d].iter().sum::<f64>() / d as f64;
        assert!((got - want).abs() < 1e-12);
    }
}

#[test]
fn gather_channels_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    for (rows, c, idx) in [
        (37usize, 13usize, vec![12u32, 0, 5, 5, 7]),
        (1, 1, vec![0]),
        (300, 7, (0..7).rev().collect()),
    ] {
        let src: Vec<f32> = (0..rows * c).map(|_| rng.unit() as f32).collect();
        let k = idx.len();
        let t_src = gpu.upload("src", &[rows, c], &src).unwrap();
        let t_idx = gpu.upload("idx", &[k], &idx).unwrap();
        // A larger output buffer: entries past rows * k stay untouched.
        let t_out = gpu
            .upload("out", &[rows * k + 3], &vec![-1.0f32; rows * k + 3])
            .unwrap();
        let mut plan = Plan::default();
        plan.push(gather_channels(&gpu, &t_src, &t_idx, &t_out, rows, c, k).unwrap());
        plan.run(&gpu).unwrap();
        let got: Vec<f32> = gpu.read(&t_out).unwrap();
        for r in 0..rows {
            for (j, &ch) in idx.iter().enumerate() {
                let want = src[r * c + ch as usize];
                assert_eq!(
                    got[r * k + j],
                    want,
                    "rows {rows}, c {c}: row {r}, slot {j}"
                );
            }
        }
        assert_eq!(&got[rows * k..], &[-1.0; 3]);
    }
    let t = gpu.upload("t", &[4], &[0.0f32; 4]).unwrap();
    let i = gpu.upload("i", &[1], &[0u32]).unwrap();
    assert!(
        gather_channels(&gpu, &t, &i, &t, 2, 2, 3).is_err(),
        "k > channels"
    );
}

#[test]
fn drop_order_ties_by_index_and_groups_partition_the_levels() {
    assert_eq!(drop_order(&[0.5, 0.0, 0.5, 0.0, 0.25]), vec![1, 3, 4, 0, 2]);
    for c in [1usize, 3, 9, 10, 11, 24, 1280] {
        let order = random_order(c, 3, 0);
        let groups = level_groups(&order);
        assert_eq!(groups.len(), 10);
        let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..c).collect::<Vec<_>>(), "c = {c}");
        for (k, &p) in PERCENTS.iter().enumerate() {
            // Level k keeps groups k..9: the channels after the first floor(p C / 100).
            let mut kept: Vec<usize> = groups[k..].iter().flatten().copied().collect();
            kept.sort_unstable();
            let mut want = order[p * c / 100..].to_vec();
            want.sort_unstable();
            assert_eq!(kept, want);
            assert_eq!(dropped_count(p, c), p * c / 100);
        }
    }
}

// ----- Leave-one-out ridge by refitting, from the definition -----

/// Solve A x = b (A n x n, row-major) by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for col in 0..n {
        let piv = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, piv * n + k);
        }
        b.swap(col, piv);
        for r in col + 1..n {
            let f = a[r * n + col] / a[col * n + col];
            for k in col..n {
                a[r * n + k] -= f * a[col * n + k];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x
}

/// LOO R^2 of ridge (unpenalised intercept, lambda = alpha tr(Xc'Xc)/p on all images) of every
/// column of y [n, t] on x [n, p], by refitting without each image.
fn loo_r2(x: &[f64], p: usize, y: &[f64], t: usize, n: usize, alpha: f64) -> f64 {
    let mean = |v: &[f64], w: usize, rows: &[usize]| -> Vec<f64> {
        (0..w)
            .map(|k| rows.iter().map(|&i| v[i * w + k]).sum::<f64>() / rows.len() as f64)
            .collect()
    };
    let all: Vec<usize> = (0..n).collect();
    let mx = mean(x, p, &all);
    let trace: f64 = (0..n)
        .flat_map(|i| (0..p).map(move |k| (i, k)))
        .map(|(i, k)| (x[i * p + k] - mx[k]).powi(2))
        .sum();
    let lambda = alpha * if trace > 0.0 { trace / p as f64 } else { 1.0 };
    let my = mean(y, t, &all);
    let tss: f64 = (0..n * t).map(|k| (y[k] - my[k % t]).powi(2)).sum();
    let mut sse = 0.0;
    for out in 0..n {
        let train: Vec<usize> = (0..n).filter(|&i| i != out).collect();
        let (xm, ym) = (mean(x, p, &train), mean(y, t, &train));
        let mut a = vec![0.0; p * p];
        for &i in &train {
            for r in 0..p {
                for c in 0..p {
                    a[r * p + c] += (x[i * p + r] - xm[r]) * (x[i * p + c] - xm[c]);
                }
            }
        }
        for r in 0..p {
            a[r * p + r] += lambda;
        }
        for col in 0..t {
            let b: Vec<f64> = (0..p)
                .map(|r| {
                    train
                        .iter()
                        .map(|&i| (x[i * p + r] - xm[r]) * (y[i * t + col] - ym[col]))
                        .sum()
                })
                .collect();
            let beta = solve(a.clone(), b, p);
            let pred = ym[col]
                + (0..p)
                    .map(|r| (x[out * p + r] - xm[r]) * beta[r])
                    .sum::<f64>();
            sse += (y[out * t + col] - pred).powi(2);
        }
    }
    1.0 - sse / tss
}

/// The best LOO R^2 over the default alphas (first on ties) and its alpha.
fn best_loo_r2(x: &[f64], p: usize, y: &[f64], t: usize, n: usize) -> (f64, f64) {
    let mut best = (f64::NEG_INFINITY, 0.0);
    for &a in &DEFAULT_ALPHAS {
        let r2 = loo_r2(x, p, y, t, n, a);
        if r2 > best.0 {
            best = (r2, a);
        }
    }
    best
}

fn opt(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

/// Pooled RSA(kept, full) with the reference implementations; None when undefined.
fn pooled_rsa_ref(x: &[f64], n: usize, c: usize, kept: &[usize], method: &str) -> Option<f64> {
    let full = corr_rdm(x, n, c);
    let kept_x = cols_of(x, n, c, kept);
    rsa_ref(&corr_rdm(&kept_x, n, kept.len()), &full, n, method)
}

#[test]
fn pooled_curves_ridge_and_silent_channels_match_first_principles() {
    let dir = scratch("prune-synthetic");
    let n = 9;
    let classes = ["bird", "cat", "dog"];
    let names = image_names(n);
    let images: Vec<(&str, Option<&str>)> = names
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), Some(classes[i / 3])))
        .collect();
    let mut rng = Rng::new(3);
    let mut taps = vec![
        SynthTap::random("blocks.0", n, 12, &mut rng),
        SynthTap::random("blocks.1", n, 5, &mut rng),
    ];
    for t in &mut taps {
        // Continuous positive features: with ReLU zeros, few kept channels give rows that are
        // exactly proportional in exact arithmetic (r = 1), whose entries then tie or not by
        // rounding, and rank correlations of such ties depend on the summation order.
        for v in &mut t.pooled {
            *v += (0.05 + 0.1 * rng.unit()) as f32;
        }
        // Class firing: a channel is silent for a class with probability 0.3.
        t.by_class = Some(
            (0..3 * t.channels)
                .map(|_| if rng.unit() < 0.3 { 0.0 } else { rng.unit() })
                .collect(),
        );
    }
    write_run(&dir, &images, &taps);
    let (seed, repeats) = (5u64, 3usize);
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "prune",
        &s(&dir),
        "--no-flat",
        "--seed",
        &seed.to_string(),
        "--random-repeats",
        &repeats.to_string(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["taps"].as_array().unwrap().len(), 2);
    let summary = read_json(&dir.join("prune/summary.json"));
    assert_eq!(summary["taps"][1]["tap"], "blocks.1");
    let mut undefined_seen = 0;
    for t in &taps {
        let c = t.channels;
        let j = read_json(&dir.join(format!("prune/{}.json", t.name)));
        let x: Vec<f64> = t.pooled.iter().map(|&v| v as f64).collect();
        // Ascending firing rate, ties by index.
        let mut order: Vec<usize> = (0..c).collect();
        order.sort_by(|&a, &b| {
            t.firing_rate[a]
                .partial_cmp(&t.firing_rate[b])
                .unwrap()
                .then(a.cmp(&b))
        });
        let got_order: Vec<usize> = j["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(got_order, order, "{}", t.name);
        assert_eq!(
            j["never_firing"].as_u64().unwrap() as usize,
            t.firing_rate.iter().filter(|&&r| r == 0.0).count()
        );
        let levels = j["levels"].as_array().unwrap();
        assert_eq!(levels.len(), 10);
        let mut prunable = None;
        let mut chain = true;
        for (k, level) in levels.iter().enumerate() {
            let p = PERCENTS[k];
            let d = p * c / 100;
            assert_eq!(level["percent"].as_u64().unwrap() as usize, p);
            assert_eq!(level["dropped"].as_u64().unwrap() as usize, d);
            let want = pooled_rsa_ref(&x, n, c, &order[d..], "spearman");
            let got = opt(&level["pooled_rsa"]);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{} {p}%: {g} vs {w}", t.name),
                (None, None) => {
                    undefined_seen += 1;
                    assert!(!level["undefined"].as_array().unwrap().is_empty());
                }
                other => panic!("{} {p}%: {other:?}", t.name),
            }
            match got {
                Some(v) if chain && v >= 0.95 => prunable = Some(p),
                _ => chain = false,
            }
            // The random baseline: the same counts from seeded random orders.
            for r in 0..repeats {
                let ro = random_order(c, seed, r);
                let want = pooled_rsa_ref(&x, n, c, &ro[d..], "spearman");
                let got = opt(&level["pooled_random"]["values"][r]);
                match (got, want) {
                    (Some(g), Some(w)) => assert!(
                        (g - w).abs() < 1e-12,
                        "{} {p}% random {r}: {g} vs {w}",
                        t.name
                    ),
                    (None, None) => {}
                    other => panic!("{} {p}% random {r}: {other:?}", t.name),
                }
            }
            // Variance of all pooled channels explained by the dropped ones (LOO R^2).
            let got = level["variance_explained"].as_f64().unwrap();
            if d == 0 {
                assert_eq!(got, 0.0, "nothing dropped explains nothing");
            } else {
                let (want, alpha) = best_loo_r2(&cols_of(&x, n, c, &order[..d]), d, &x, c, n);
                assert!(
                    (got - want).abs() < 1e-8,
                    "{} {p}%: R2 {got} vs {want}",
                    t.name
                );
                assert_eq!(level["ridge"]["alpha"].as_f64().unwrap(), alpha);
                let ro = random_order(c, seed, 0);
                let (want, _) = best_loo_r2(&cols_of(&x, n, c, &ro[..d]), d, &x, c, n);
                let got = level["variance_explained_random"]["values"][0]
                    .as_f64()
                    .unwrap();
                assert!((got - want).abs() < 1e-8);
            }
            assert!(level["flat_rsa"].is_null());
        }
        assert_eq!(
            j["prunable_percent_pooled"].as_u64().map(|v| v as usize),
            prunable
        );
        // Silent channels per class.
        let by = t.by_class.as_ref().unwrap();
        for (k, class) in classes.iter().enumerate() {
            let entry = &j["by_class"][k];
            assert_eq!(entry["class"], *class);
            assert_eq!(entry["images"], 3);
            let never: Vec<usize> = (0..c).filter(|&ch| by[k * c + ch] == 0.0).collect();
            let elsewhere: Vec<usize> = never
                .iter()
                .copied()
                .filter(|&ch| (0..3).any(|o| o != k && by[o * c + ch] > 0.0))
                .collect();
            let as_vec = |v: &serde_json::Value| -> Vec<usize> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as usize)
                    .collect()
            };
            assert_eq!(as_vec(&entry["never_active"]), never);
            assert_eq!(as_vec(&entry["active_elsewhere"]), elsewhere);
        }
    }
    // 5 channels at 80-90%: one channel kept, a constant pooled vector, no correlation RDM.
    assert!(undefined_seen >= 2, "{undefined_seen}");

    // Other rankings: std of the pooled activation over images, entropy of the firing rate.
    ok(&[
        "prune",
        &s(&dir),
        "--no-flat",
        "--rank",
        "std",
        "--taps",
        "blocks.0",
    ]);
    let j = read_json(&dir.join("prune/blocks.0.json"));
    let t = &taps[0];
    for ch in 0..t.channels {
        let v: Vec<f64> = (0..n)
            .map(|i| t.pooled[i * t.channels + ch] as f64)
            .collect();
        let m = v.iter().sum::<f64>() / n as f64;
        let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!((j["score"][ch].as_f64().unwrap() - sd).abs() < 1e-12);
    }
    ok(&[
        "prune",
        &s(&dir),
        "--no-flat",
        "--rank",
        "entropy",
        "--taps",
        "blocks.0",
    ]);
    let j = read_json(&dir.join("prune/blocks.0.json"));
    for ch in 0..t.channels {
        let r = t.firing_rate[ch];
        let h = |p: f64| if p > 0.0 { -p * p.log2() } else { 0.0 };
        assert!((j["score"][ch].as_f64().unwrap() - (h(r) + h(1.0 - r))).abs() < 1e-12);
    }
}

#[test]
fn edge_cases_fail_with_clear_messages() {
    // Two images.
    let two = scratch("prune-two-images");
    let mut rng = Rng::new(4);
    write_run(
        &two,
        &[("/x/1.png", None), ("/x/2.png", None)],
        &[SynthTap::random("a", 2, 4, &mut rng)],
    );
    fails(
        &["prune", &s(&two), "--no-flat"],
        &["2 image(s)", "3 images or more"],
    );

    // One channel: no pooled correlation structure; a clear error, and euclidean works.
    let one = scratch("prune-one-channel");
    let names = image_names(6);
    let images: Vec<(&str, Option<&str>)> = names.iter().map(|s| (s.as_str(), None)).collect();
    write_run(&one, &images, &[SynthTap::random("solo", 6, 1, &mut rng)]);
    fails(
        &["prune", &s(&one), "--no-flat"],
        &["tap 'solo'", "one channel", "--measure euclidean"],
    );
    ok(&["prune", &s(&one), "--no-flat", "--measure", "euclidean"]);
    let j = read_json(&one.join("prune/solo.json"));
    for level in j["levels"].as_array().unwrap() {
        // floor(k * 1 / 100) = 0 channels dropped at every level.
        assert_eq!(level["dropped"], 0);
        assert!((level["pooled_rsa"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    }

    // Per-class output asked of a run without labels.
    fails(
        &[
            "prune",
            &s(&one),
            "--no-flat",
            "--by-class",
            "--measure",
            "euclidean",
        ],
        &["images.txt", "no class labels", "sub-folder per class"],
    );

    // A tap that cannot be analysed next to one that can: a warning, the other is written.
    let mixed = scratch("prune-mixed");
    write_run(
        &mixed,
        &images,
        &[
            SynthTap::random("solo", 6, 1, &mut rng),
            SynthTap::random("wide", 6, 8, &mut rng),
        ],
    );
    let o = sparsescope(&["prune", &s(&mixed), "--no-flat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: tap 'solo' not analysed"));
    assert!(mixed.join("prune/wide.json").exists());
    assert!(!mixed.join("prune/solo.json").exists());
    let summary = read_json(&mixed.join("prune/summary.json"));
    assert_eq!(summary["failed"][0]["tap"], "solo");
    // The second pass needs the run's model.
    fails(
        &["prune", &s(&mixed), "--taps", "wide"],
        &["none.safetensors", "--model", "--no-flat"],
    );
}

const EFFNET: &str = "models/efficientnet_lite0.safetensors";

#[test]
fn end_to_end_on_efficientnet_flat_curves_match_extracted_activations() {
    let images = scratch("prune-e2e-images");
    for (class, files) in [
        ("a", ["chelsea.png", "coffee.png"]),
        ("b", ["dog.jpg", "eagle.jpg"]),
    ] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for f in files {
            std::fs::copy(
                root().join("models/images").join(f),
                images.join(class).join(f),
            )
            .unwrap();
        }
    }
    let (out, ext) = (scratch("prune-e2e-run"), scratch("prune-e2e-extract"));
    let model = s(&root().join(EFFNET));
    let taps = "_blocks.5,_blocks.15,_bn1";
    ok(&[
        "run",
        "--model",
        &model,
        "--input",
        &s(&images),
        "--taps",
        taps,
        "--out",
        &s(&out),
        "--quiet",
    ]);
    ok(&[
        "extract",
        "--model",
        &model,
        "--input",
        &s(&images),
        "--taps",
        taps,
        "--out",
        &s(&ext),
        "--quiet",
    ]);
    let n = 4;

    // rsa within the run: the matrix of the run's own RDM files.
    let r: serde_json::Value = serde_json::from_str(&ok(&["rsa", &s(&out), "--json"])).unwrap();
    let names = ["_blocks.5", "_blocks.15", "_bn1"];
    let rdm = |t: &str| {
        read_npy::<f64>(out.join(format!("taps/{t}/rdm_pooled_correlation.npy")))
            .unwrap()
            .1
    };
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                let want = rsa_ref(&rdm(names[i]), &rdm(names[j]), n, "spearman").unwrap();
                let got = r["matrix"][i][j].as_f64().unwrap();
                assert!((got - want).abs() < 1e-12, "({i}, {j}) {got} vs {want}");
            }
        }
    }

    // prune with its second GPU pass; Pearson so that the check has a tolerance (GPU f32 sums
    // vs f64 here) instead of depending on no rank flipping.
    let (seed, repeats) = (9u64, 2usize);
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "prune",
        &s(&out),
        "--method",
        "pearson",
        "--seed",
        &seed.to_string(),
        "--random-repeats",
        &repeats.to_string(),
        "--by-class",
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["flat_passes"], 1);
    for name in names {
        let j = read_json(&out.join(format!("prune/{name}.json")));
        let (shape, act) = read_npy::<f32>(ext.join(format!("{name}.npy"))).unwrap();
        let (p, c) = (shape[1], shape[2]);
        assert_eq!(j["channels"].as_u64().unwrap() as usize, c);
        let act: Vec<f64> = act.iter().map(|&v| v as f64).collect();
        // Flat features restricted to channels `kept`: [n, P * kept].
        let flat_kept = |kept: &[usize]| -> Vec<f64> {
            let mut v = Vec::with_capacity(n * p * kept.len());
            for i in 0..n {
                for q in 0..p {
                    for &k in kept {
                        v.push(act[(i * p + q) * c + k]);
                    }
                }
            }
            v
        };
        let full = corr_rdm(&flat_kept(&(0..c).collect::<Vec<_>>()), n, p * c);
        assert!(j["flat"]["full_vs_run_max_abs_diff"].as_f64().unwrap() < 1e-5);
        let order: Vec<usize> = j["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let (_, rate) = read_npy::<f64>(out.join(format!("taps/{name}/firing_rate.npy"))).unwrap();
        for w in order.windows(2) {
            assert!(rate[w[0]] < rate[w[1]] || (rate[w[0]] == rate[w[1]] && w[0] < w[1]));
        }
        let kept_rsa = |kept: &[usize]| {
            let mut kept = kept.to_vec();
            kept.sort_unstable();
            let k = kept.len();
            rsa_ref(&corr_rdm(&flat_kept(&kept), n, p * k), &full, n, "pearson").unwrap()
        };
        for (k, level) in j["levels"].as_array().unwrap().iter().enumerate() {
            let d = dropped_count(PERCENTS[k], c);
            let got = level["flat_rsa"].as_f64().unwrap();
            let want = kept_rsa(&order[d..]);
            assert!(
                (got - want).abs() < 1e-5,
                "{name} {}%: flat {got} vs {want}",
                PERCENTS[k]
            );
            for r in 0..repeats {
                let ro = random_order(c, seed, r);
                let got = level["flat_random"]["values"][r].as_f64().unwrap();
                let want = kept_rsa(&ro[d..]);
                assert!(
                    (got - want).abs() < 1e-5,
                    "{name} {}% random {r}",
                    PERCENTS[k]
                );
            }
        }
        // Silent channels per class, from the extracted activations: never > 0 over the class's
        // images and positions.
        for (k, class) in ["a", "b"].iter().enumerate() {
            let entry = &j["by_class"][k];
            assert_eq!(entry["class"], *class);
            let never: Vec<u64> = (0..c)
                .filter(|&ch| {
                    (2 * k..2 * k + 2).all(|i| (0..p).all(|q| act[(i * p + q) * c + ch] <= 0.0))
                })
                .map(|ch| ch as u64)
                .collect();
            let got: Vec<u64> = entry["never_active"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(got, never, "{name} class {class}");
        }
    }
    // A GPU budget too small for _bn1's exact groups: that tap is sketched, and the taps take
    // two passes. The sketched full flat RDM stays within the stated error of the run's exact
    // one (3 standard deviations of sqrt(2 / 1024)); the exact taps come out identical.
    let exact: Vec<serde_json::Value> = names
        .iter()
        .map(|t| read_json(&out.join(format!("prune/{t}.json"))))
        .collect();
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "prune",
        &s(&out),
        "--method",
        "pearson",
        "--seed",
        &seed.to_string(),
        "--random-repeats",
        &repeats.to_string(),
        "--rdm-budget",
        "2",
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["flat_passes"], 2);
    for (k, name) in names.iter().enumerate() {
        let j = read_json(&out.join(format!("prune/{name}.json")));
        if *name == "_bn1" {
            assert_eq!(j["flat"]["mode"]["mode"], "sketch");
            let err = j["flat"]["full_vs_run_max_abs_diff"].as_f64().unwrap();
            assert!(err > 0.0 && err < 3.0 * (2.0f64 / 1024.0).sqrt(), "{err}");
            for level in j["levels"].as_array().unwrap() {
                let v = level["flat_rsa"].as_f64().unwrap();
                assert!((-1.0..=1.0).contains(&v));
            }
            assert!((j["levels"][0]["flat_rsa"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        } else {
            assert_eq!(j["flat"]["mode"]["mode"], "exact");
            assert_eq!(j["levels"], exact[k]["levels"], "{name}");
        }
    }
    let table = ok(&["prune", &s(&out), "--no-flat", "--taps", "_bn1"]);
    assert!(table.contains("_bn1") && table.contains("prunable"));
}
