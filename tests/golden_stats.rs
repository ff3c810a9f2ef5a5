//! Every statistic of `run` against numpy, computed from the PyTorch activations of the golden
//! fixtures by tests/golden/make_stats_golden.py, for ViT and CNN taps alike. Counts are exact
//! except for entries within EPS of the threshold or of a bin edge, where the GPU's f32
//! rounding (taps differ from PyTorch's by up to ~2e-5) may put a value on the other side;
//! the reference counts those ambiguous entries and the test allows exactly that many.

mod common;

use std::collections::HashMap;
use std::path::Path;

use sparsescope::data::{BatchSource, Interpolation, Preprocess};
use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};
use sparsescope::npy::{read_npy, write_npy};
use sparsescope::outdir::RunDir;
use sparsescope::rdm::Measure;
use sparsescope::run::{RunOptions, run};
use sparsescope::stats::StatsConfig;

/// Reference arrays by key: i64 arrays as i64, f64 and f32 arrays as f64.
struct Reference {
    ints: HashMap<String, Vec<i64>>,
    floats: HashMap<String, Vec<f64>>,
}

fn load_reference(fixture: &str) -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/stats/{fixture}.safetensors"));
    let r = common::golden::load_typed(&path);
    Reference {
        ints: r.ints,
        floats: r.floats,
    }
}

fn close(what: &str, got: f64, want: f64, atol: f64, rtol: f64) {
    assert!(
        (got - want).abs() <= atol + rtol * want.abs(),
        "{what}: got {got}, numpy {want} (allowed {:.1e})",
        atol + rtol * want.abs()
    );
}

fn l1(a: &[i64], b: &[i64]) -> i64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

fn check(fixture: &str, options: ModelOptions) {
    let gpu = Gpu::new(&GpuOptions::default()).unwrap_or_else(|e| panic!("needs an adapter: {e}"));
    let (checkpoint, golden) = common::fixture(fixture).unwrap();
    let reference = load_reference(fixture);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-scratch/golden-stats")
        .join(fixture);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.npy");
    write_npy(&input, &golden.input.0, &golden.input.1).unwrap();
    let net = model::load(&gpu, &checkpoint, &options).unwrap();
    // A .npy input is taken as preprocessed; the preprocessing argument is unused.
    let pre = Preprocess::imagenet(32, 1.0, Interpolation::Bicubic).unwrap();
    let source = BatchSource::open(&input, &pre, 2, 1).unwrap();
    let out = dir.join("out");
    let opts = RunOptions {
        taps: vec![],
        batch: 2,
        stats: StatsConfig::default(),
        measures: vec![Measure::Correlation, Measure::Cosine, Measure::Euclidean],
        rdm_budget: 1 << 30,
        sketch_dim: 1024,
        seed: 0,
        strict: true,
        shard: None,
        part_start: None,
    };
    run(
        &gpu,
        net.as_ref(),
        &checkpoint,
        &input,
        source,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    let rd = RunDir::open(&out).unwrap();
    let taps = rd.taps().unwrap();
    assert_eq!(taps.len(), golden.taps.len(), "{fixture}: tap count");
    let n = golden.input.0[0] as f64;
    for t in &taps {
        let name = &t.name;
        let what = |s: &str| format!("{fixture} {name} {s}");
        let ri = |k: &str| &reference.ints[&format!("{name}/{k}")];
        let rf = |k: &str| &reference.floats[&format!("{name}/{k}")];
        let summary = rd.tap_summary(name).unwrap()["stats"].clone();
        let entries = (n as usize * t.positions * t.channels) as f64;

        // Firing counts per channel, and per image.
        let (_, count) = rd.array::<u64>(name, "firing_count").unwrap();
        let ambig = ri("firing_ambig");
        for (c, (&got, &want)) in count.iter().zip(ri("firing_count")).enumerate() {
            assert!(
                (got as i64 - want).abs() <= ambig[c],
                "{}: channel {c}: {got} vs numpy {want} ({} ambiguous)",
                what("firing_count"),
                ambig[c]
            );
        }
        let (_, rate_img) = rd.array::<f64>(name, "firing_rate_img").unwrap();
        let img_ambig = ri("active_img_ambig");
        for (c, (&got, &want)) in rate_img.iter().zip(ri("active_img")).enumerate() {
            let got = (got * n).round() as i64;
            assert!(
                (got - want).abs() <= img_ambig[c],
                "{}: channel {c}: {got} images vs numpy {want}",
                what("firing_rate_img")
            );
        }
        let total_ambig: i64 = ambig.iter().sum();

        // Histograms: [under, bins.., over] as numpy lays them out.
        let hist = |key: &str, with_under: bool| -> Vec<i64> {
            let (_, bins) = rd.array::<u64>(name, key).unwrap();
            let s = &summary[key];
            let mut v = Vec::new();
            if with_under {
                v.push(s["underflow"].as_i64().unwrap());
            }
            v.extend(bins.iter().map(|&b| b as i64));
            v.push(s["overflow"].as_i64().unwrap());
            v
        };
        let edge = ri("edge_ambig");
        // An ambiguous entry moves between two neighbouring bins: at most 2 to the L1 distance.
        let d = l1(&hist("hist", true), ri("hist"));
        assert!(
            d <= 2 * edge[0],
            "{}: L1 {d} > 2 x {} entries near an edge",
            what("hist"),
            edge[0]
        );
        let d = l1(&hist("hist_pos", false), ri("hist_pos"));
        assert!(
            d <= 2 * edge[1] + total_ambig,
            "{}: L1 {d}",
            what("hist_pos")
        );
        for (k, e) in [("loghist_pos", edge[2]), ("loghist_neg", edge[3])] {
            let d = l1(&hist(k, true), ri(k));
            assert!(d <= 2 * e + total_ambig, "{}: L1 {d}", what(k));
        }

        // Scalars: frac_active, frac_nonzero, mean, std, min, max, hoyer mean and std.
        let s = rf("scalars");
        // Shares of equal counts can still differ in the last bit (numpy takes a mean of
        // booleans, the tool divides two integers): 1e-12 covers that rounding and nothing else.
        let share_tol = total_ambig as f64 / entries + 1e-12;
        close(
            &what("frac_active"),
            summary["frac_active"].as_f64().unwrap(),
            s[0],
            share_tol,
            0.0,
        );
        close(
            &what("frac_nonzero"),
            summary["frac_nonzero"].as_f64().unwrap(),
            s[1],
            share_tol,
            0.0,
        );
        close(
            &what("mean"),
            summary["mean"].as_f64().unwrap(),
            s[2],
            1e-5,
            1e-5,
        );
        close(
            &what("std"),
            summary["std"].as_f64().unwrap(),
            s[3],
            1e-5,
            1e-5,
        );
        // min and max are single entries: the per-entry tolerance of the golden taps applies.
        close(
            &what("min"),
            summary["min"].as_f64().unwrap(),
            s[4],
            1e-4,
            1e-4,
        );
        close(
            &what("max"),
            summary["max"].as_f64().unwrap(),
            s[5],
            1e-4,
            1e-4,
        );
        close(
            &what("hoyer_mean"),
            summary["hoyer_mean"].as_f64().unwrap(),
            s[6],
            1e-5,
            1e-5,
        );
        close(
            &what("hoyer_std"),
            summary["hoyer_std"].as_f64().unwrap(),
            s[7],
            1e-5,
            1e-5,
        );

        // Pooled features and RDMs.
        let (_, pooled) = rd.array::<f32>(name, "pooled").unwrap();
        for (i, (&got, &want)) in pooled.iter().zip(rf("pooled")).enumerate() {
            close(
                &format!("{} [{i}]", what("pooled")),
                got as f64,
                want,
                1e-5,
                1e-5,
            );
        }
        for m in ["correlation", "cosine", "euclidean"] {
            for f in ["pooled", "flat"] {
                let key = format!("rdm_{f}_{m}");
                let (_, got) = read_npy::<f64>(rd.array_path(name, &key)).unwrap();
                for (i, (&g, &w)) in got.iter().zip(rf(&key)).enumerate() {
                    close(&format!("{} [{i}]", what(&key)), g, w, 1e-5, 1e-5);
                }
            }
        }
    }
    eprintln!("{fixture}: statistics of {} taps match numpy", taps.len());
}

#[test]
fn vit_tiny_statistics() {
    check("vit_tiny", ModelOptions::default());
}

#[test]
fn dinov2_hf_statistics() {
    check(
        "dinov2_hf",
        ModelOptions {
            heads: Some(4),
            ..Default::default()
        },
    );
}

#[test]
fn resnet18_statistics() {
    check("resnet18", ModelOptions::default());
}

#[test]
fn resnet50_statistics() {
    check("resnet50", ModelOptions::default());
}

#[test]
fn efficientnet_lite0_statistics() {
    check("efficientnet_lite0", ModelOptions::default());
}

#[test]
fn convnext_atto_statistics() {
    check("convnext_atto", ModelOptions::default());
}
