//! `run --shard i/n` and `merge`: three shards of five photos (parts of 1, 2 and 2 images)
//! merged equal one run over all of them: every u64 array (counts, histograms) bit for bit,
//! pooled features and firing rates exactly, RDMs within 1e-6; for exact and for sketched flat
//! RDMs. Shards that do not belong together are refused with the folder named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sparsescope::npy::read_npy;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) {
    let o = sparsescope(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

const TAPS: &str = "_blocks.2.act2,_blocks.9,_bn1";

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = root().join("target/test-scratch/shard").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for p in [
        "chelsea.png",
        "coffee.png",
        "dog.jpg",
        "eagle.jpg",
        "rocket.jpg",
    ] {
        std::fs::copy(root().join("models/images").join(p), images.join(p)).unwrap();
    }
    (dir, images)
}

fn run(images: &Path, out: &Path, extra: &[&str]) {
    let o = run_env(images, out, extra, None);
    assert!(
        o.status.success(),
        "{extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every .npy of the single run against the merged one.
fn compare(single: &Path, merged: &Path) -> (usize, f64) {
    let (mut files, mut worst) = (0, 0.0f64);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(single.join("summary.json")).unwrap()).unwrap();
    for t in summary["taps"].as_array().unwrap() {
        for (name, rel) in t["files"].as_object().unwrap() {
            let (a, b) = (
                single.join(rel.as_str().unwrap()),
                merged.join(rel.as_str().unwrap()),
            );
            if name.starts_with("rdm_") {
                let (sa, x) = read_npy::<f64>(&a).unwrap();
                let (sb, y) = read_npy::<f64>(&b).unwrap();
                assert_eq!(sa, sb, "{name}");
                for (u, v) in x.iter().zip(&y) {
                    let d = (u - v).abs();
                    worst = worst.max(d);
                    assert!(d <= 1e-6, "{}: {u} vs merged {v}", a.display());
                }
            } else {
                // Counts, histograms, rates, pooled features: identical bytes.
                let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
                assert!(x == y, "{} differs from the single run's", b.display());
            }
            files += 1;
        }
    }
    let lines = |p: &Path| std::fs::read_to_string(p.join("images.txt")).unwrap();
    assert_eq!(lines(single), lines(merged));
    (files, worst)
}

fn check(name: &str, extra: &[&str], want_mode: &str) {
    let (dir, images) = setup(name);
    let single = dir.join("single");
    run(&images, &single, extra);
    let mut shards = Vec::new();
    for i in [2, 0, 1] {
        let out = dir.join(format!("shard{i}"));
        let spec = format!("{i}/3");
        let mut args = extra.to_vec();
        args.extend_from_slice(&["--shard", &spec]);
        run(&images, &out, &args);
        shards.push(out);
    }
    let merged = dir.join("merged");
    let mut args = vec!["merge", "--quiet"];
    for s in &shards {
        args.push(s.to_str().unwrap());
    }
    args.extend_from_slice(&["--out", merged.to_str().unwrap()]);
    ok(&args);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(merged.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["inputs"]["images"], 5);
    assert_eq!(summary["taps"][0]["rdm_flat"]["mode"], want_mode);
    let (files, worst) = compare(&single, &merged);
    eprintln!("{name}: {files} files equal, RDMs max difference {worst:.2e}");
    assert!(files >= 30, "{files}");
}

#[test]
fn three_shards_merged_equal_one_run_exact() {
    check("exact", &[], "exact");
}

#[test]
fn three_shards_merged_equal_one_run_sketched() {
    // A 1 MiB budget cannot hold the flat features of these taps: they are sketched.
    check(
        "sketch",
        &["--rdm-budget", "1", "--sketch-dim", "64"],
        "sketch",
    );
}

#[test]
fn shards_that_do_not_belong_together_are_refused() {
    let (dir, images) = setup("refused");
    let (a, b, c, d) = (dir.join("a"), dir.join("b"), dir.join("c"), dir.join("d"));
    run(&images, &a, &["--shard", "0/2"]);
    run(&images, &b, &["--shard", "0/2"]);
    run(&images, &c, &["--shard", "1/2", "--seed", "7"]);
    run(&images, &d, &["--shard", "1/2", "--f16-weights"]);
    for (part, f16) in [(&a, false), (&d, true)] {
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(part.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["model"]["f16_weights"], f16, "{}", part.display());
    }
    let merged = dir.join("merged");
    let m = merged.to_str().unwrap();
    for (args, want) in [
        (
            vec![
                "merge",
                a.to_str().unwrap(),
                b.to_str().unwrap(),
                "--out",
                m,
            ],
            "given 2 times",
        ),
        (
            vec![
                "merge",
                a.to_str().unwrap(),
                c.to_str().unwrap(),
                "--out",
                m,
            ],
            "other flags",
        ),
        (
            vec![
                "merge",
                a.to_str().unwrap(),
                d.to_str().unwrap(),
                "--out",
                m,
            ],
            "other weight storage",
        ),
        (
            vec!["merge", a.to_str().unwrap(), "--out", m],
            "given 0 times",
        ),
    ] {
        let o = sparsescope(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{args:?}: {err}");
    }
    let o = sparsescope(&["run", "--shard", "3/2", "--out", m]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("INDEX/COUNT"), "{err}");
    let not_shard = dir.join("plain");
    run(&images, &not_shard, &[]);
    let o = sparsescope(&["merge", not_shard.to_str().unwrap(), "--out", m]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("shard.json"), "{err}");
}

/// `extract --shard`: the parts' files, concatenated in index order, are the whole list's.
#[test]
fn extract_shards_concatenate_to_the_whole() {
    let (dir, images) = setup("extract");
    let model = root().join("models/efficientnet_lite0.safetensors");
    let ex = |out: &Path, shard: Option<&str>| {
        let mut args = vec![
            "extract",
            "--quiet",
            "--model",
            model.to_str().unwrap(),
            "--input",
            images.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--taps",
            "_blocks.9",
        ];
        if let Some(s) = shard {
            args.extend_from_slice(&["--shard", s]);
        }
        ok(&args);
    };
    let whole = dir.join("whole");
    ex(&whole, None);
    let (shape, all) = read_npy::<f32>(whole.join("_blocks.9.npy")).unwrap();
    let mut joined = Vec::new();
    let mut rows = 0;
    for i in 0..3 {
        let out = dir.join(format!("part{i}"));
        ex(&out, Some(&format!("{i}/3")));
        let (s, x) = read_npy::<f32>(out.join("_blocks.9.npy")).unwrap();
        rows += s[0];
        joined.extend(x);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("shard.json")).unwrap()).unwrap();
        assert_eq!(meta["shard"]["index"], i);
    }
    assert_eq!(rows, shape[0]);
    assert!(joined == all, "concatenated parts differ from the whole");
}

fn run_env(images: &Path, out: &Path, extra: &[&str], stop_after: Option<&str>) -> Output {
    let model = root().join("models/efficientnet_lite0.safetensors");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sparsescope"));
    cmd.args([
        "run",
        "--quiet",
        "--model",
        model.to_str().unwrap(),
        "--input",
        images.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--taps",
        TAPS,
        "--batch",
        "2",
        "--rdm",
        "correlation,cosine,euclidean",
    ])
    .args(extra);
    if let Some(k) = stop_after {
        cmd.env("SPARSESCOPE_STOP_AFTER_BATCHES", k);
    }
    cmd.output().unwrap()
}

/// Every file under `dir` (but .resume) with its bytes.
fn files_of(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n == ".resume") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// An interrupted run (stopped after a batch, as Ctrl-C stops it) keeps its work in OUT/.resume
/// and leaves OUT's earlier outputs byte-identical; `--resume` (interrupted once more, then
/// completed) gives the outputs of an uninterrupted run. The stop comes from the test hook
/// SPARSESCOPE_STOP_AFTER_BATCHES, which sets the same flag as the Ctrl-C handler.
#[test]
fn interrupted_runs_resume_to_the_uninterrupted_result() {
    let (dir, images) = setup("resume");
    let single = dir.join("single");
    run(&images, &single, &[]);
    let out = dir.join("out");
    // Earlier outputs in OUT: a run over two of the photos.
    let two = dir.join("two");
    std::fs::create_dir_all(&two).unwrap();
    for p in ["chelsea.png", "coffee.png"] {
        std::fs::copy(images.join(p), two.join(p)).unwrap();
    }
    run(&two, &out, &[]);
    let before = files_of(&out);

    let o = run_env(&images, &out, &[], Some("1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("interrupted after 2 of 5 images") && err.contains("--resume"),
        "{err}"
    );
    assert!(
        files_of(&out) == before,
        "the interrupted run changed OUT's earlier outputs"
    );
    assert!(out.join(".resume/part-0/summary.json").exists());

    let o = run_env(&images, &out, &["--resume"], Some("1"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("interrupted after 4 of 5 images"), "{err}");
    assert!(
        files_of(&out) == before,
        "OUT changed before the resume finished"
    );

    let o = run_env(&images, &out, &["--resume"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !out.join(".resume").exists(),
        "the parts were not cleaned up"
    );
    let (files, worst) = compare(&single, &out);
    eprintln!(
        "resume: {files} files equal to the uninterrupted run, RDMs max difference {worst:.2e}"
    );

    let o = run_env(&images, &out, &["--resume"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("nothing to resume"),
        "{err}"
    );
}
