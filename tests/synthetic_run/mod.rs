//! What the `rsa` and `prune` tests share: run folders written by hand (the files `sparsescope
//! run` writes, from features chosen by the test, so that the CPU analyses are tested without a
//! GPU and on any shape: one channel, two images, constant features), the binary, and
//! straightforward reference implementations of every statistic, written from the definitions
//! in DESIGN.md and independent of the library's (O(n^2) ranks, brute-force tau-a).
//!
//! Include with `mod synthetic_run;`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sparsescope::npy::write_npy;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh folder under target/test-scratch.
pub fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .expect("run sparsescope")
}

/// stderr without the Vulkan loader's environment warnings.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Run and expect success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = sparsescope(args);
    assert!(
        o.status.success(),
        "sparsescope {args:?} failed: {}",
        stderr(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run and expect a one-line error containing every one of `needles`.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let o = sparsescope(args);
    let e = stderr(&o);
    assert!(!o.status.success(), "sparsescope {args:?} succeeded");
    assert!(
        e.starts_with("error: ") && e.lines().count() == 1,
        "not one error line: {e}"
    );
    for n in needles {
        assert!(e.contains(n), "error lacks '{n}': {e}");
    }
    e
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub use crate::support::Rng;

/// One tap of a synthetic run: pooled features [n, c] (f32) and per-channel firing rates.
pub struct SynthTap {
    pub name: String,
    pub pooled: Vec<f32>,
    pub channels: usize,
    pub firing_rate: Vec<f64>,
    /// [K, C] when the run has classes.
    pub by_class: Option<Vec<f64>>,
}

impl SynthTap {
    /// Random pooled features (a ReLU of uniform noise plus a per-image signal, so taps are
    /// related) and random firing rates with some ties and zeros.
    pub fn random(name: &str, n: usize, c: usize, rng: &mut Rng) -> SynthTap {
        let signal: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).sin()).collect();
        let pooled = (0..n * c)
            .map(|k| {
                let v = signal[k / c] * ((k % c) as f64 * 0.3).cos() + rng.unit() - 0.3;
                v.max(0.0) as f32
            })
            .collect();
        let firing_rate = (0..c)
            .map(|_| {
                let u = rng.unit();
                if u < 0.2 {
                    0.0
                } else {
                    (u * 8.0).floor() / 8.0
                }
            })
            .collect();
        SynthTap {
            name: name.into(),
            pooled,
            channels: c,
            firing_rate,
            by_class: None,
        }
    }
}

/// Write a run folder as `sparsescope run` does (schema 1): summary.json, images.txt and, per
/// tap, pooled.npy, firing_rate.npy, firing_rate_img_by_class.npy (with labels) and
/// rdm_pooled_correlation.npy (computed here by `corr_rdm`).
pub fn write_run(dir: &Path, images: &[(&str, Option<&str>)], taps: &[SynthTap]) {
    let n = images.len();
    std::fs::create_dir_all(dir.join("taps")).unwrap();
    let mut lines = String::new();
    for (p, l) in images {
        lines.push_str(p);
        if let Some(l) = l {
            lines.push('\t');
            lines.push_str(l);
        }
        lines.push('\n');
    }
    std::fs::write(dir.join("images.txt"), lines).unwrap();
    let mut classes: Vec<&str> = images.iter().filter_map(|(_, l)| *l).collect();
    classes.sort();
    classes.dedup();
    let mut tap_entries = Vec::new();
    for (depth, t) in taps.iter().enumerate() {
        let d = dir.join("taps").join(&t.name);
        std::fs::create_dir_all(&d).unwrap();
        write_npy(d.join("pooled.npy"), &[n, t.channels], &t.pooled).unwrap();
        write_npy(d.join("firing_rate.npy"), &[t.channels], &t.firing_rate).unwrap();
        if let Some(b) = &t.by_class {
            write_npy(
                d.join("firing_rate_img_by_class.npy"),
                &[classes.len(), t.channels],
                b,
            )
            .unwrap();
        }
        let x: Vec<f64> = t.pooled.iter().map(|&v| v as f64).collect();
        write_npy(
            d.join("rdm_pooled_correlation.npy"),
            &[n, n],
            &corr_rdm(&x, n, t.channels),
        )
        .unwrap();
        tap_entries.push(serde_json::json!({
            "tap": {"name": t.name, "kind": "block", "depth": depth, "positions": 1, "channels": t.channels},
            "rdm_flat": {"mode": "exact"},
        }));
    }
    let summary = serde_json::json!({
        "schema_version": 1,
        "tool": {"name": "sparsescope", "version": "test"},
        "model": {"path": "none.safetensors", "sha256": "", "arch": "vit"},
        "inputs": {"path": "synthetic", "images": n, "image_shape": [3, 8, 8],
                   "classes": if classes.is_empty() { serde_json::Value::Null } else { serde_json::json!(classes) }},
        "flags": {"batch": 4, "rdm_budget": 1u64 << 30, "sketch_dim": 1024, "seed": 0},
        "taps": tap_entries,
    });
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
}

/// Image lines "img<k>.png" for k < n.
pub fn image_names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("/data/img{k}.png")).collect()
}

// ----- Reference statistics, from the definitions -----

/// Correlation-distance RDM of the rows of [n, d] x: 1 - Pearson r of the rows as vectors
/// (each centred by its own mean), r = 0 for a constant row; exact-zero diagonal.
pub fn corr_rdm(x: &[f64], n: usize, d: usize) -> Vec<f64> {
    let centred: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let row = &x[i * d..(i + 1) * d];
            let m = row.iter().sum::<f64>() / d as f64;
            row.iter().map(|v| v - m).collect()
        })
        .collect();
    let norm: Vec<f64> = centred
        .iter()
        .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let r = if norm[i] == 0.0 || norm[j] == 0.0 {
                0.0
            } else {
                centred[i]
                    .iter()
                    .zip(&centred[j])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / (norm[i] * norm[j])
            };
            out[i * n + j] = 1.0 - snap(r);
        }
    }
    out
}

/// DESIGN.md: a correlation or cosine within 1e-12 of +-1 is +-1 (proportional vectors tie
/// exactly, not by rounding).
pub fn snap(r: f64) -> f64 {
    if 1.0 - r.abs() <= 1e-12 {
        r.signum()
    } else {
        r
    }
}

/// Cosine-distance RDM (a zero row has similarity 0).
pub fn cos_rdm(x: &[f64], n: usize, d: usize) -> Vec<f64> {
    let norm: Vec<f64> = (0..n)
        .map(|i| {
            x[i * d..(i + 1) * d]
                .iter()
                .map(|v| v * v)
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let dot: f64 = (0..d).map(|k| x[i * d + k] * x[j * d + k]).sum();
                out[i * n + j] = if norm[i] == 0.0 || norm[j] == 0.0 {
                    1.0
                } else {
                    1.0 - snap(dot / (norm[i] * norm[j]))
                };
            }
        }
    }
    out
}

/// Entries i < j, row by row.
pub fn upper(m: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            out.push(m[i * n + j]);
        }
    }
    out
}

/// Average ranks (1-based), ties sharing their mean rank: rank = 1 + #less + (#equal - 1) / 2.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|&x| {
            let less = v.iter().filter(|&&y| y < x).count() as f64;
            let equal = v.iter().filter(|&&y| y == x).count() as f64;
            1.0 + less + (equal - 1.0) / 2.0
        })
        .collect()
}

/// Pearson correlation; `None` when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let sab: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let saa: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let sbb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    if saa <= 1e-300 || sbb <= 1e-300 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    pearson(&ranks(a), &ranks(b))
}

/// Kendall tau-a by brute force over all pairs of entries.
pub fn tau_a(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let x = (a[i] - a[j]).partial_cmp(&0.0).unwrap() as i32 as f64;
            let y = (b[i] - b[j]).partial_cmp(&0.0).unwrap() as i32 as f64;
            s += x * y;
        }
    }
    s / (n * (n - 1) / 2) as f64
}

/// RSA of two full RDMs by `method` ("spearman", "pearson", "kendall").
pub fn rsa_ref(a: &[f64], b: &[f64], n: usize, method: &str) -> Option<f64> {
    let (ua, ub) = (upper(a, n), upper(b, n));
    match method {
        "spearman" => spearman(&ua, &ub),
        "pearson" => pearson(&ua, &ub),
        "kendall" => Some(tau_a(&ua, &ub)),
        _ => panic!("method {method}"),
    }
}

/// Columns `cols` of [n, c] x.
pub fn cols_of(x: &[f64], n: usize, c: usize, cols: &[usize]) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..n {
        for &k in cols {
            out.push(x[i * c + k]);
        }
    }
    out
}

/// Largest |a - b| over two equally long slices.
pub fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}
