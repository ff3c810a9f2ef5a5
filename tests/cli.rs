//! The command line as a user meets it: outputs on the bundled model and photos, and one-line
//! errors with a non-zero exit for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sparsescope::npy::read_npy_f32;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .expect("run sparsescope")
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n")
}

const EFFNET: &str = "models/efficientnet_lite0.safetensors";

#[test]
fn inspect_lists_every_tap_with_its_shape() {
    let o = sparsescope(&["inspect", &root().join(EFFNET).to_string_lossy(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["arch"], "efficientnet");
    let taps = v["taps"].as_array().unwrap();
    // stem, 16 blocks (block 0 unexpanded: 2 taps; 15 expanded: 3 taps), head.
    assert_eq!(taps.len(), 1 + 2 + 15 * 3 + 1);
    assert_eq!(taps[0]["name"], "_bn0");
    assert_eq!(taps[0]["positions"], 112 * 112);
    assert_eq!(taps.last().unwrap()["name"], "_bn1");
    assert_eq!(taps.last().unwrap()["channels"], 1280);
    assert_eq!(v["parameters"], 4_694_024);
    assert_eq!(v["f16_weights"], false);
}

#[test]
fn inspect_reports_the_weights_memory_halved_by_f16_weights() {
    let bytes = |extra: &[&str]| {
        let model = root().join(EFFNET).to_string_lossy().into_owned();
        let mut args = vec!["inspect", &model, "--json"];
        args.extend_from_slice(extra);
        let o = sparsescope(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["f16_weights"], !extra.is_empty());
        v["weight_bytes"].as_u64().unwrap() as f64
    };
    let (f32_bytes, f16_bytes) = (bytes(&[]), bytes(&["--f16-weights"]));
    // Every folded kernel and the classifier go to f16; only the biases (about 0.6% of the
    // elements) stay f32.
    let ratio = f16_bytes / f32_bytes;
    assert!(
        ratio > 0.5 && ratio < 0.51,
        "f16 / f32 weight bytes = {ratio}"
    );
    assert!(
        f32_bytes > 4.0 * 4.6e6,
        "{f32_bytes} bytes for 4.7 M parameters"
    );
}

#[test]
fn extract_writes_taps_and_logits_of_the_bundled_photos() {
    let out = scratch("extract");
    let images = scratch("extract-images");
    for f in ["coffee.png", "dog.jpg"] {
        std::fs::copy(root().join("models/images").join(f), images.join(f)).unwrap();
    }
    let o = sparsescope(&[
        "extract",
        "--model",
        &root().join(EFFNET).to_string_lossy(),
        "--input",
        &images.to_string_lossy(),
        "--taps",
        "_blocks.1*,_bn1",
        "--out",
        &out.to_string_lossy(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (shape, _) = read_npy_f32(out.join("_blocks.1.npy")).unwrap();
    assert_eq!(shape, vec![2, 56 * 56, 24]);
    let (shape, head) = read_npy_f32(out.join("_bn1.npy")).unwrap();
    assert_eq!(shape, vec![2, 49, 1280]);
    assert!(
        head.iter().all(|&v| (0.0..=6.0).contains(&v)),
        "ReLU6 output out of range"
    );
    assert!(
        out.join("_blocks.10.act1.npy").exists(),
        "the glob _blocks.1* matches _blocks.10..15 too"
    );
    let (shape, logits) = read_npy_f32(out.join("logits.npy")).unwrap();
    assert_eq!(shape, vec![2, 1000]);
    let top = logits[..1000]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(top, 967, "coffee.png should be espresso");
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let dir = scratch("bad-inputs");
    let truncated = dir.join("truncated.safetensors");
    let bytes = std::fs::read(root().join(EFFNET)).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let empty = scratch("bad-inputs-empty");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "inspect".into(),
                dir.join("missing.safetensors").to_string_lossy().into(),
            ],
            "cannot open",
        ),
        (
            vec!["inspect".into(), truncated.to_string_lossy().into()],
            "not a valid safetensors file",
        ),
        (
            vec![
                "extract".into(),
                "--model".into(),
                root().join(EFFNET).to_string_lossy().into(),
                "--input".into(),
                root().join("models/images").to_string_lossy().into(),
                "--taps".into(),
                "no.such.tap".into(),
                "--out".into(),
                dir.join("o").to_string_lossy().into(),
            ],
            "tap 'no.such.tap' does not exist",
        ),
        (
            vec![
                "extract".into(),
                "--model".into(),
                root().join(EFFNET).to_string_lossy().into(),
                "--input".into(),
                empty.to_string_lossy().into(),
                "--out".into(),
                dir.join("o").to_string_lossy().into(),
            ],
            "no images",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = sparsescope(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: more than one line: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `sparsescope bench` on the bundled EfficientNet-Lite0, one image, `iters` timed batches of
/// each kind, with `flag`; must succeed.
fn bench_bundled(iters: &str, flag: &str) -> std::process::Output {
    let model = root().join(EFFNET);
    let model = model.to_string_lossy();
    let o = sparsescope(&[
        "bench", "--model", &model, "--batch", "1", "--iters", iters, flag,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

#[test]
fn bench_reports_throughput_and_kernel_times() {
    let o = bench_bundled("2", "--json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["forward_images_per_s"].as_f64().unwrap() > 0.0);
    // The ratio is a timing: reported, never asserted (speed targets live in benches). It is
    // the median of the rounds' ratios, here the mean of the two.
    let rounds: Vec<f64> = v["stats_cost_ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(rounds.len(), 2, "{v}");
    assert!(
        rounds.iter().all(|r| r.is_finite() && *r > 0.0),
        "{rounds:?}"
    );
    let ratio = v["stats_cost_ratio"].as_f64().unwrap();
    assert!(
        (ratio - (rounds[0] + rounds[1]) / 2.0).abs() < 1e-12,
        "{ratio} {rounds:?}"
    );
    let kernels = v["kernels"].as_array().unwrap();
    // lavapipe has timestamp queries: every kernel kind of the plan is timed (the statistics
    // and the sketch read the tap from its buffer or, where the adapter's timing chose the
    // texture kernels, from a texture copy: `stats_tap` or `stats_tap_texture`).
    let name = |e: &serde_json::Value| e["kernel"].as_str().unwrap_or_default().to_string();
    for k in ["depthwise_conv2d", "stats_tap", "rdm_sketch"] {
        assert!(
            kernels
                .iter()
                .any(|e| name(e) == k || name(e) == format!("{k}_texture")),
            "{k} missing from {kernels:?}"
        );
    }
    let share: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-9, "shares sum to {share}");
    // `dispatches` holds the same batch dispatch by dispatch: per kernel, as many as `kernels`
    // counts, and their times (and the times of the copies before them) add up to its.
    let dispatches = v["dispatches"].as_array().unwrap();
    for k in kernels {
        let own: Vec<&serde_json::Value> =
            dispatches.iter().filter(|d| name(d) == name(k)).collect();
        assert_eq!(own.len() as u64, k["dispatches"].as_u64().unwrap(), "{k}");
        for field in ["seconds", "copy_seconds"] {
            let times: Vec<f64> = own.iter().map(|d| d[field].as_f64().unwrap()).collect();
            assert!(
                times.iter().all(|t| t.is_finite() && *t >= 0.0),
                "{k}: {field} {times:?}"
            );
            let sum: f64 = times.iter().sum();
            let want = k[field].as_f64().unwrap();
            assert!(
                (sum - want).abs() <= 1e-9 * want.max(1.0),
                "{k}: {field} {sum}"
            );
        }
    }
    // Copies and pass boundaries take time: it is measured, not left at zero.
    let copies: f64 = dispatches
        .iter()
        .map(|d| d["copy_seconds"].as_f64().unwrap())
        .sum();
    assert!(
        copies > 0.0,
        "no copy time measured over {} dispatches",
        dispatches.len()
    );
    // The plan's first dispatch is the stem's layout change, before any statistics.
    assert_eq!(name(&dispatches[0]), "nchw_to_nhwc", "{:?}", dispatches[0]);
}

#[test]
fn bench_each_prints_every_dispatch() {
    let o = bench_bundled("1", "--each");
    let text = String::from_utf8(o.stdout).unwrap();
    // The kernel table's counts, then one row per dispatch numbered from 0.
    let calls: usize = text
        .lines()
        .skip_while(|l| !(l.trim_start().starts_with("kernel ") && l.contains("calls")))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('#'))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with('#'))
        .skip(1)
        .collect();
    assert!(calls > 0, "{text}");
    assert_eq!(rows.len(), calls, "{text}");
    assert!(rows[0].trim_start().starts_with("0 nchw_to_nhwc"), "{text}");
}
