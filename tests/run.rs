//! `sparsescope run` as a whole: reproducibility, sketched flat RDMs within the error the summary
//! states, and memory that does not grow with the image count beyond the per-image state.

use std::path::{Path, PathBuf};
use std::process::Command;

use sparsescope::npy::{read_npy, write_npy};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const EFFNET: &str = "models/efficientnet_lite0.safetensors";

fn run(args: &[&str]) -> serde_json::Value {
    let out = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    let o = Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .arg("run")
        .args(["--model", &root().join(EFFNET).to_string_lossy(), "--quiet"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("summary.json")).unwrap())
        .unwrap()
}

fn f64s(path: PathBuf) -> Vec<f64> {
    read_npy::<f64>(path).unwrap().1
}

#[test]
fn two_runs_give_identical_counts_and_histograms() {
    let (a, b) = (scratch("repro-a"), scratch("repro-b"));
    let images = root().join("models/images");
    for out in [&a, &b] {
        run(&[
            "--input",
            &images.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--taps",
            "_blocks.3*,_bn1",
            "--rdm",
            "correlation,euclidean",
        ]);
    }
    let mut compared = 0;
    for tap in ["_blocks.3.act1", "_blocks.3.act2", "_blocks.3", "_bn1"] {
        for file in [
            "firing_count",
            "hist",
            "hist_pos",
            "loghist_pos",
            "loghist_neg",
        ] {
            let rel = format!("taps/{tap}/{file}.npy");
            assert_eq!(
                std::fs::read(a.join(&rel)).unwrap(),
                std::fs::read(b.join(&rel)).unwrap(),
                "{rel} differs between runs"
            );
            compared += 1;
        }
        for file in [
            "rdm_pooled_correlation",
            "rdm_flat_correlation",
            "rdm_flat_euclidean",
        ] {
            let (x, y) = (
                f64s(a.join(format!("taps/{tap}/{file}.npy"))),
                f64s(b.join(format!("taps/{tap}/{file}.npy"))),
            );
            let worst = x
                .iter()
                .zip(&y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(worst <= 1e-6, "{tap}/{file}: runs differ by {worst}");
            compared += 1;
        }
    }
    assert_eq!(compared, 32);
}

#[test]
fn sketched_flat_rdms_stay_within_the_stated_error() {
    let (exact, sketch) = (scratch("rdm-exact"), scratch("rdm-sketch"));
    let images = root().join("models/images");
    let taps = "_blocks.5,_blocks.12.act1,_bn1";
    run(&[
        "--input",
        &images.to_string_lossy(),
        "--out",
        &exact.to_string_lossy(),
        "--taps",
        taps,
    ]);
    let summary = run(&[
        "--input",
        &images.to_string_lossy(),
        "--out",
        &sketch.to_string_lossy(),
        "--taps",
        taps,
        "--rdm-budget",
        "0",
        "--sketch-dim",
        "512",
    ]);
    for t in summary["taps"].as_array().unwrap() {
        let name = t["tap"]["name"].as_str().unwrap();
        let flat = &t["rdm_flat"];
        assert_eq!(flat["mode"], "sketch", "{name}: a zero budget must sketch");
        let bound = flat["expected_error"].as_f64().unwrap();
        let e = f64s(exact.join(format!("taps/{name}/rdm_flat_correlation.npy")));
        let s = f64s(sketch.join(format!("taps/{name}/rdm_flat_correlation.npy")));
        let n = (e.len() as f64).sqrt() as usize;
        let pairs: Vec<f64> = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| (e[i * n + j] - s[i * n + j]).abs())
            .collect();
        let mean = pairs.iter().sum::<f64>() / pairs.len() as f64;
        // The bound is the standard deviation of one entry's error (sqrt(2/k)); the mean absolute
        // error of a Gaussian is 0.8 of that, so 1x the bound is a fair check of the mean.
        assert!(
            mean <= bound,
            "{name}: mean |sketch - exact| {mean:.4} exceeds the stated {bound:.4}"
        );
        eprintln!("{name}: mean abs error {mean:.4}, stated {bound:.4}");
    }
}

/// Peak memory of runs over 200 and 5,000 random 32x32 images of one tap with a sketched flat
/// RDM: the growth must be explained by the per-image state the design allows (the sketch rows,
/// pooled features) plus the fixed-size blocks in which the RDMs stream to disk, never by
/// activations, the number of batches or an N x N matrix (one f64 RDM of 5,000 images alone is
/// 191 MiB).
#[test]
fn peak_memory_grows_only_by_the_per_image_state() {
    // _blocks.0 at a 32x32 input: 16 x 16 positions, 16 channels; sketched to k = 512.
    let (c, k) = (16usize, 512usize);
    let mut peaks = Vec::new();
    let sizes = [200usize, 5000];
    for &n in &sizes {
        let dir = scratch(&format!("memory-{n}"));
        let mut state = 0x9E3779B97F4A7C15u64;
        let data: Vec<f32> = (0..n * 3 * 32 * 32)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        let input = dir.join("input.npy");
        write_npy(&input, &[n, 3, 32, 32], &data).unwrap();
        drop(data);
        let out = dir.join("out");
        let summary = run(&[
            "--input",
            &input.to_string_lossy(),
            "--out",
            &out.to_string_lossy(),
            "--taps",
            "_blocks.0",
            "--rdm-budget",
            "0",
            "--sketch-dim",
            &k.to_string(),
            "--batch",
            "16",
        ]);
        assert_eq!(summary["inputs"]["images"], n);
        assert_eq!(summary["taps"][0]["rdm_flat"]["mode"], "sketch");
        let rdm = out.join("taps/_blocks.0/rdm_flat_correlation.npy");
        assert_eq!(read_npy::<f64>(&rdm).unwrap().0, [n, n]);
        peaks.push(
            summary["resources"]["peak_rss_bytes"]
                .as_u64()
                .expect("Linux reports VmHWM") as f64,
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Per image: the sketch row (k f32) and row statistics (4 f32) on the GPU; pooled features
    // (c f32 on the GPU side and the CPU side, c f64 shifted for the pooled Gram). Fixed: the
    // buffers of one RDM block (GPU rows and products of at most 4 MiB each, the products'
    // read-back, the block's inner products and dissimilarities in f64 of 8 MiB each), 32 MiB;
    // 16 MiB of slack for the allocator and the driver. Nothing per batch: the batch of 16 makes
    // 300 more batches in the larger run, so a leak of even 0.2 MB per batch fails the test
    // (stats_fold once leaked 0.45 MB per dispatch on lavapipe, see shaders/stats_fold.wgsl).
    let per_image = (k + 4) as f64 * 4.0 + c as f64 * (4.0 + 4.0 + 8.0);
    let mib = (1 << 20) as f64;
    let allowed = per_image * (sizes[1] - sizes[0]) as f64 + 48.0 * mib;
    let matrix = (sizes[1] * sizes[1]) as f64 * 8.0;
    assert!(
        allowed < matrix,
        "the test must tell an N x N matrix from the allowed state"
    );
    let growth = peaks[1] - peaks[0];
    eprintln!(
        "peak RSS {:.0} MiB -> {:.0} MiB; growth {:.0} MiB, allowed {:.0} MiB, one RDM {:.0} MiB",
        peaks[0] / mib,
        peaks[1] / mib,
        growth / mib,
        allowed / mib,
        matrix / mib
    );
    assert!(
        growth <= allowed,
        "peak memory grew by {growth} bytes, more than the per-image state allows ({allowed})"
    );
}
