//! `sparsescope rsa` on run folders: the within-run matrix, the cross matrix between two runs,
//! and an external target with permutation p-values and bootstrap intervals, each against
//! straightforward references written from the definitions (tests/synthetic_run); and the
//! errors a user meets (constant RDMs, two images, wrong or foreign targets, other images).
//! CPU only: the synthetic runs need no adapter.

mod support;
mod synthetic_run;

use std::path::Path;

use sparsescope::analysis::rsa::{bootstrap_sample, test_permutations};
use sparsescope::npy::{read_npy, write_npy};
use synthetic_run::*;

const N: usize = 7;

/// Three related taps over N images, of 5, 9 and 12 channels.
fn synthetic(dir: &Path, seed: u64, names: &[String]) -> Vec<SynthTap> {
    let mut rng = Rng::new(seed);
    let taps = vec![
        SynthTap::random("blocks.0", N, 5, &mut rng),
        SynthTap::random("blocks.1", N, 9, &mut rng),
        SynthTap::random("blocks.2.mlp.act", N, 12, &mut rng),
    ];
    let images: Vec<(&str, Option<&str>)> = names.iter().map(|s| (s.as_str(), None)).collect();
    write_run(dir, &images, &taps);
    taps
}

fn f64s(t: &SynthTap) -> Vec<f64> {
    t.pooled.iter().map(|&v| v as f64).collect()
}

fn rdm_of(t: &SynthTap) -> Vec<f64> {
    corr_rdm(&f64s(t), N, t.channels)
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn within_run_matrix_matches_reference_for_every_method() {
    let dir = scratch("rsa-within");
    let taps = synthetic(&dir, 1, &image_names(N));
    for method in ["spearman", "pearson", "kendall"] {
        let stdout = ok(&["rsa", &s(&dir), "--method", method, "--json"]);
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let (shape, m) =
            read_npy::<f64>(dir.join(format!("rsa/rsa_pooled_correlation_{method}.npy"))).unwrap();
        assert_eq!(shape, vec![3, 3]);
        let json = read_json(&dir.join(format!("rsa/rsa_pooled_correlation_{method}.json")));
        assert_eq!(json["taps"], report["taps"]);
        assert_eq!(json["taps"][2], "blocks.2.mlp.act");
        for i in 0..3 {
            assert_eq!(m[i * 3 + i], 1.0);
            for j in 0..3 {
                if i != j {
                    let want = rsa_ref(&rdm_of(&taps[i]), &rdm_of(&taps[j]), N, method).unwrap();
                    let got = m[i * 3 + j];
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{method} ({i}, {j}): {got} vs {want}"
                    );
                    assert_eq!(report["matrix"][i][j].as_f64().unwrap(), got);
                }
            }
        }
    }
    // The table names the taps.
    let table = ok(&["rsa", &s(&dir)]);
    assert!(table.contains("blocks.2.mlp.act") && table.contains("spearman"));
}

#[test]
fn pooled_rdms_of_other_measures_come_from_pooled_features() {
    let dir = scratch("rsa-cosine");
    let taps = synthetic(&dir, 2, &image_names(N));
    ok(&[
        "rsa",
        &s(&dir),
        "--measure",
        "cosine",
        "--taps",
        "blocks.0,blocks.1",
    ]);
    let (_, m) = read_npy::<f64>(dir.join("rsa/rsa_pooled_cosine_spearman.npy")).unwrap();
    let want = rsa_ref(
        &cos_rdm(&f64s(&taps[0]), N, 5),
        &cos_rdm(&f64s(&taps[1]), N, 9),
        N,
        "spearman",
    )
    .unwrap();
    assert!((m[1] - want).abs() < 1e-12, "{} vs {want}", m[1]);
    // Flat RDMs are not recomputed: the run's file is needed, and the message says how.
    fails(
        &["rsa", &s(&dir), "--features", "flat"],
        &["rdm_flat_correlation.npy", "missing", "--rdm correlation"],
    );
}

#[test]
fn cross_matrix_between_two_runs_on_the_same_images() {
    let (a, b) = (scratch("rsa-cross-a"), scratch("rsa-cross-b"));
    let ta = synthetic(&a, 3, &image_names(N));
    let tb = synthetic(&b, 4, &image_names(N));
    let out: serde_json::Value = serde_json::from_str(&ok(&[
        "rsa",
        &s(&a),
        &s(&b),
        "--taps",
        "blocks.*",
        "--json",
    ]))
    .unwrap();
    assert_eq!(out["kind"], "cross");
    let (shape, m) =
        read_npy::<f64>(a.join("rsa/cross_rsa-cross-b_pooled_correlation_spearman.npy")).unwrap();
    assert_eq!(shape, vec![3, 3]);
    for i in 0..3 {
        for j in 0..3 {
            let want = rsa_ref(&rdm_of(&ta[i]), &rdm_of(&tb[j]), N, "spearman").unwrap();
            assert!((m[i * 3 + j] - want).abs() < 1e-12, "({i}, {j})");
        }
    }
}

#[test]
fn runs_on_different_images_are_refused_naming_the_line() {
    let (a, b, c) = (
        scratch("rsa-diff-a"),
        scratch("rsa-diff-b"),
        scratch("rsa-diff-c"),
    );
    synthetic(&a, 5, &image_names(N));
    let mut names = image_names(N);
    names[2] = "/data/other.png".into();
    synthetic(&b, 6, &names);
    fails(
        &["rsa", &s(&a), &s(&b)],
        &["differ at line 3", "/data/img2.png", "/data/other.png"],
    );
    // Same first lines, one image fewer.
    let shorter: Vec<String> = image_names(N - 1);
    let mut rng = Rng::new(7);
    let taps = vec![SynthTap::random("blocks.0", N - 1, 5, &mut rng)];
    let images: Vec<(&str, Option<&str>)> = shorter.iter().map(|s| (s.as_str(), None)).collect();
    write_run(&c, &images, &taps);
    fails(
        &["rsa", &s(&a), &s(&c)],
        &["lists 7 images", "lists 6", "line 7", "/data/img6.png"],
    );
}

/// A random symmetric target RDM with a zero diagonal.
fn target_rdm(seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut t = vec![0.0; N * N];
    for i in 0..N {
        for j in i + 1..N {
            let v = rng.unit();
            t[i * N + j] = v;
            t[j * N + i] = v;
        }
    }
    t
}

#[test]
fn target_rsa_permutation_p_values_and_bootstrap_match_the_definitions() {
    let dir = scratch("rsa-target");
    let taps = synthetic(&dir, 8, &image_names(N));
    let target = target_rdm(9);
    let path = dir.join("human.npy");
    write_npy(&path, &[N, N], &target).unwrap();
    let (perms, samples, seed) = (199usize, 60usize, 11u64);
    let report: serde_json::Value = serde_json::from_str(&ok(&[
        "rsa",
        &s(&dir),
        "--target",
        &s(&path),
        "--permutations",
        &perms.to_string(),
        "--bootstrap",
        &samples.to_string(),
        "--seed",
        &seed.to_string(),
        "--json",
    ]))
    .unwrap();
    let (shape, values) =
        read_npy::<f64>(dir.join("rsa/target_human_pooled_correlation_spearman.npy")).unwrap();
    assert_eq!(shape, vec![3]);
    let ut = upper(&target, N);
    for (k, tap) in taps.iter().enumerate() {
        let rdm = rdm_of(tap);
        let ua = upper(&rdm, N);
        let observed = spearman(&ua, &ut).unwrap();
        let row = &report["target_rows"][k];
        assert_eq!(row["tap"], tap.name.as_str());
        assert!((values[k] - observed).abs() < 1e-12);
        assert!((row["rsa"].as_f64().unwrap() - observed).abs() < 1e-12);
        // p = (1 + #{permuted >= observed}) / (1 + permutations), the target's images permuted.
        let mut exceed = 0;
        for p in test_permutations(N, perms, seed) {
            let mut permuted = Vec::new();
            for i in 0..N {
                for j in i + 1..N {
                    permuted.push(target[p[i] * N + p[j]]);
                }
            }
            if spearman(&ua, &permuted).unwrap() >= observed - 1e-12 {
                exceed += 1;
            }
        }
        let want_p = (1 + exceed) as f64 / (1 + perms) as f64;
        assert_eq!(
            row["exceed"].as_u64().unwrap() as usize,
            exceed,
            "{}",
            tap.name
        );
        assert!((row["p_value"].as_f64().unwrap() - want_p).abs() < 1e-15);
        // Bootstrap: images drawn with replacement, pairs of two different images kept, the
        // percentile interval (linear interpolation) over the samples where both sides vary.
        let mut stats = Vec::new();
        for b in 0..samples {
            let draw = bootstrap_sample(N, seed, b as u64);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            for p in 0..N {
                for q in p + 1..N {
                    if draw[p] != draw[q] {
                        x.push(rdm[draw[p] * N + draw[q]]);
                        y.push(target[draw[p] * N + draw[q]]);
                    }
                }
            }
            if let Some(v) = spearman(&x, &y) {
                stats.push(v);
            }
        }
        stats.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            let pos = q * (stats.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(stats.len() - 1);
            stats[lo] + (pos - lo as f64) * (stats[hi] - stats[lo])
        };
        let ci = &row["ci"];
        assert_eq!(ci["valid"].as_u64().unwrap() as usize, stats.len());
        assert!(
            (ci["low"].as_f64().unwrap() - pct(0.025)).abs() < 1e-9,
            "{ci}"
        );
        assert!(
            (ci["high"].as_f64().unwrap() - pct(0.975)).abs() < 1e-9,
            "{ci}"
        );
    }
}

#[test]
fn csv_targets_are_parsed_and_put_in_the_run_order_by_image_names() {
    let dir = scratch("rsa-csv");
    synthetic(&dir, 12, &image_names(N));
    let target = target_rdm(13);
    write_npy(dir.join("t.npy"), &[N, N], &target).unwrap();
    ok(&[
        "rsa",
        &s(&dir),
        "--target",
        &s(&dir.join("t.npy")),
        "--permutations",
        "0",
    ]);
    let (_, want) =
        read_npy::<f64>(dir.join("rsa/target_t_pooled_correlation_spearman.npy")).unwrap();

    // The same matrix as a CSV in a shuffled image order, its images named in a header row and
    // a first column.
    let order = [4usize, 0, 6, 2, 1, 5, 3];
    let mut csv = String::from("image");
    for &o in &order {
        csv.push_str(&format!(",img{o}"));
    }
    csv.push('\n');
    for &a in &order {
        csv.push_str(&format!("img{a}.png"));
        for &b in &order {
            csv.push_str(&format!(",{}", target[a * N + b]));
        }
        csv.push('\n');
    }
    // The header and the row labels must name the images alike: file stems in both.
    let csv = csv.replace(".png", "");
    std::fs::write(dir.join("t.csv"), &csv).unwrap();
    ok(&[
        "rsa",
        &s(&dir),
        "--target",
        &s(&dir.join("t.csv")),
        "--permutations",
        "0",
    ]);
    let (_, got) =
        read_npy::<f64>(dir.join("rsa/target_t_pooled_correlation_spearman.npy")).unwrap();
    assert!(max_diff(&got, &want) < 1e-12, "{got:?} vs {want:?}");

    // A bare whitespace-separated matrix with --target-images giving the shuffled order.
    let mut bare = String::new();
    for &a in &order {
        let row: Vec<String> = order
            .iter()
            .map(|&b| format!("{}", target[a * N + b]))
            .collect();
        bare.push_str(&row.join(" "));
        bare.push('\n');
    }
    std::fs::write(dir.join("bare.txt"), bare).unwrap();
    let list: String = order
        .iter()
        .map(|o| format!("/data/img{o}.png\n"))
        .collect();
    std::fs::write(dir.join("order.txt"), list).unwrap();
    ok(&[
        "rsa",
        &s(&dir),
        "--target",
        &s(&dir.join("bare.txt")),
        "--target-images",
        &s(&dir.join("order.txt")),
        "--permutations",
        "0",
    ]);
    let (_, got) =
        read_npy::<f64>(dir.join("rsa/target_bare_pooled_correlation_spearman.npy")).unwrap();
    assert!(max_diff(&got, &want) < 1e-12);
}

#[test]
fn bad_targets_fail_with_a_clear_message() {
    let dir = scratch("rsa-bad-target");
    synthetic(&dir, 14, &image_names(N));
    let run = s(&dir);
    let write = |name: &str, n: usize, data: &[f64]| {
        let p = dir.join(name);
        write_npy(&p, &[n, n], data).unwrap();
        s(&p)
    };
    // Wrong size.
    let small = write("small.npy", 5, &[0.0; 25]);
    fails(
        &["rsa", &run, "--target", &small],
        &["small.npy", "5 x 5", "7 images"],
    );
    // Not square.
    let p = dir.join("rect.npy");
    write_npy(&p, &[7, 6], &vec![0.0; 42]).unwrap();
    fails(
        &["rsa", &run, "--target", &s(&p)],
        &["rect.npy", "7 x 6", "square"],
    );
    // Constant off the diagonal: no rank correlation exists.
    let mut c = vec![1.0; N * N];
    for i in 0..N {
        c[i * N + i] = 0.0;
    }
    let constant = write("constant.npy", N, &c);
    fails(
        &["rsa", &run, "--target", &constant],
        &["constant.npy", "undefined", "all equal"],
    );
    // Not finite (in the upper triangle only).
    let mut t = target_rdm(15);
    t[1] = f64::NAN;
    let nan = write("nan.npy", N, &t);
    fails(
        &["rsa", &run, "--target", &nan],
        &["nan.npy", "(0, 1)", "finite"],
    );
    // Not symmetric.
    let mut t = target_rdm(16);
    t[2 * N + 5] += 0.5;
    let asym = write("asym.npy", N, &t);
    fails(
        &["rsa", &run, "--target", &asym],
        &["asym.npy", "not symmetric"],
    );
    // A diagonal that is not zero.
    let mut t = target_rdm(17);
    t[3 * N + 3] = 1.0;
    let diag = write("diag.npy", N, &t);
    fails(&["rsa", &run, "--target", &diag], &["diag.npy", "diagonal"]);
    // A CSV naming an image the run does not have, and one with a bad number.
    let mut csv = String::from(",a,b,c,d,e,f,g\n");
    for r in 0..N {
        csv.push_str(["a", "b", "c", "d", "e", "f", "g"][r]);
        for k in 0..N {
            csv.push_str(&format!(
                ",{}",
                if r == k { 0.0 } else { 1.0 + (r + k) as f64 }
            ));
        }
        csv.push('\n');
    }
    std::fs::write(dir.join("names.csv"), &csv).unwrap();
    fails(
        &["rsa", &run, "--target", &s(&dir.join("names.csv"))],
        &["names.csv", "'a'", "matches no image"],
    );
    std::fs::write(dir.join("word.csv"), "0,1,2\n1,0,x3\n2,3,0\n").unwrap();
    fails(
        &["rsa", &run, "--target", &s(&dir.join("word.csv"))],
        &["word.csv", "line 2", "'x3' is not a number"],
    );
}

#[test]
fn constant_tap_rdms_and_two_images_are_errors_not_nan() {
    // A dead tap (all zero): every correlation distance is 1 (a constant vector has r = 0),
    // so its RDM is constant and no RSA exists with it.
    let dir = scratch("rsa-constant-tap");
    let mut rng = Rng::new(18);
    let mut flat = SynthTap::random("dead", N, 4, &mut rng);
    flat.pooled = vec![0.0; N * 4];
    let taps = vec![SynthTap::random("alive", N, 6, &mut rng), flat];
    let names = image_names(N);
    let images: Vec<(&str, Option<&str>)> = names.iter().map(|s| (s.as_str(), None)).collect();
    write_run(&dir, &images, &taps);
    fails(
        &["rsa", &s(&dir)],
        &["tap 'dead'", "undefined", "all equal"],
    );
    // Leaving it out works.
    ok(&["rsa", &s(&dir), "--taps", "alive"]);

    let two = scratch("rsa-two-images");
    let mut rng = Rng::new(19);
    let taps = vec![
        SynthTap::random("a", 2, 3, &mut rng),
        SynthTap::random("b", 2, 3, &mut rng),
    ];
    write_run(&two, &[("/x/1.png", None), ("/x/2.png", None)], &taps);
    fails(&["rsa", &s(&two)], &["2 image(s)", "3 images or more"]);
}
