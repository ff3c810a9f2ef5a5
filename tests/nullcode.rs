//! `nullcode` against two references, on golden fixtures (ViT, ResNet, ConvNeXt):
//! - numpy (tests/golden/make_nullcode_golden.py) from the PyTorch activations: the dominant
//!   pattern, per-token Hoyer and cosine, and per-image null counts. The GPU's taps differ from
//!   PyTorch's by up to ~2e-5 (tests/golden_models.rs), so per-token values agree to 1e-4 and
//!   counts exactly except for tokens the reference marks within 1e-4 of a threshold.
//! - the definitions in f64 over this tool's own activations (`extract`'s TapReader): per-token
//!   values to 1e-6 (the kernel's compensated f32 sums over C <= 3072 channels land within
//!   1.4e-7; plain f32 sums had been off by ~1e-6 at C = 768), null shares exactly except for tokens
//!   within 1e-6 of a threshold, and the emergence depth recomputed from its definition.
//!
//! Plus the degenerate cases and the errors.

mod common;
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sparsescope::analysis::nullcode::{NullcodeOptions, NullcodeReport, nullcode_command};
use sparsescope::data::{BatchSource, Interpolation, Preprocess};
use sparsescope::extract::TapReader;
use sparsescope::gpu::ops::probe::nullcode_probe;
use sparsescope::gpu::{GpuOptions, Plan};
use sparsescope::model::{self, ModelOptions, TapKind};
use sparsescope::npy::{read_npy, write_npy};
use sparsescope::outdir::RunDir;
use sparsescope::rdm::Measure;
use sparsescope::run::{RunOptions, run};
use sparsescope::stats::StatsConfig;
use support::gpu;

struct Reference {
    floats: HashMap<String, Vec<f64>>,
    ints: HashMap<String, Vec<i64>>,
    cos_min: f64,
    hoyer_min: f64,
}

fn load_reference(fixture: &str) -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/nullcode/{fixture}.safetensors"));
    let r = common::golden::load_typed(&path);
    Reference {
        cos_min: r.metadata["cos_min"].parse().unwrap(),
        hoyer_min: r.metadata["hoyer_min"].parse().unwrap(),
        floats: r.floats,
        ints: r.ints,
    }
}

/// A `run` of the fixture's golden input (2 images) into a fresh scratch folder.
fn make_run(fixture: &str, tag: &str) -> (PathBuf, PathBuf, Vec<usize>, Vec<f32>) {
    let gpu = gpu();
    let (checkpoint, golden) = common::fixture(fixture).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-scratch/nullcode")
        .join(format!("{fixture}-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.npy");
    write_npy(&input, &golden.input.0, &golden.input.1).unwrap();
    let net = model::load(&gpu, &checkpoint, &ModelOptions::default()).unwrap();
    // A .npy input is taken as preprocessed; the preprocessing argument is unused.
    let pre = Preprocess::imagenet(32, 1.0, Interpolation::Bicubic).unwrap();
    let source = BatchSource::open(&input, &pre, 2, 1).unwrap();
    let out = dir.join("out");
    let opts = RunOptions {
        taps: vec![],
        batch: 2,
        stats: StatsConfig::default(),
        measures: vec![Measure::Correlation],
        rdm_budget: 1 << 30,
        sketch_dim: 256,
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
    (
        out,
        checkpoint,
        golden.input.0.clone(),
        golden.input.1.clone(),
    )
}

fn options(checkpoint: &Path, cos_min: f64, hoyer_min: f64) -> NullcodeOptions {
    NullcodeOptions {
        taps: vec![],
        cos_min,
        hoyer_min,
        batch: 2,
        model: Some(checkpoint.to_path_buf()),
        model_options: ModelOptions::default(),
        gpu: GpuOptions::default(),
        threads: 1,
    }
}

/// Hoyer and cos of one token in f64, by the definitions.
fn probe_f64(x: &[f32], pattern: &[f64]) -> (f64, f64) {
    let c = x.len();
    let l1: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
    let l2: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    let hoyer = if l2 > 0.0 && c > 1 {
        ((c as f64).sqrt() - l1 / l2) / ((c as f64).sqrt() - 1.0)
    } else {
        1.0
    };
    let pn = pattern.iter().sum::<f64>().sqrt();
    let cos = if l2 > 0.0 && pn > 0.0 {
        x.iter()
            .zip(pattern)
            .map(|(&v, &p)| v as f64 * p)
            .sum::<f64>()
            / (l2 * pn)
    } else {
        0.0
    };
    (hoyer, cos)
}

fn check(fixture: &str) {
    let reference = load_reference(fixture);
    let (out, checkpoint, shape, input) = make_run(fixture, "golden");
    let opts = options(&checkpoint, reference.cos_min, reference.hoyer_min);
    let report: NullcodeReport = nullcode_command(&out, &opts, &mut |_| {}).unwrap();
    let rd = RunDir::open(&out).unwrap();
    let (n, h, w) = (shape[0], shape[2], shape[3]);

    // This tool's own activations, for the 1e-6 comparison.
    let gpu = gpu();
    let net = model::load(&gpu, &checkpoint, &ModelOptions::default()).unwrap();
    let model_taps = net.taps(h, w).unwrap();
    let all: Vec<usize> = (0..model_taps.len()).collect();
    let ours = TapReader::new(&gpu, net.as_ref(), n, h, w, &all)
        .unwrap()
        .run(&gpu, &input, n)
        .unwrap();

    let (mut worst_torch, mut worst_own) = (0.0f64, 0.0f64);
    let mut shares = Vec::new();
    for t in &report.taps {
        let name = &t.name;
        let (p, c) = (t.positions, t.channels);
        let (_, rate) = rd.array::<f64>(name, "firing_rate").unwrap();
        let pattern: Vec<f64> = rate.iter().map(|&r| (r > 0.5) as u8 as f64).collect();
        assert_eq!(
            t.dominant_channels,
            pattern.iter().filter(|&&v| v == 1.0).count()
        );
        let (hs, hoyer) = read_npy::<f32>(rd.array_path(name, "hoyer")).unwrap();
        let (cs, cos) = read_npy::<f32>(rd.array_path(name, "nullcode_cos")).unwrap();
        assert_eq!((hs, cs), (vec![n, p], vec![n, p]), "{fixture} {name}");

        // numpy on PyTorch's activations.
        let want_p = &reference.floats[&format!("{name}/pattern")];
        let p_ambig = &reference.ints[&format!("{name}/pattern_ambig")];
        let same_pattern = pattern
            .iter()
            .zip(want_p)
            .zip(p_ambig)
            .all(|((a, b), &amb)| a == b || amb == 1);
        assert!(
            same_pattern,
            "{fixture} {name}: dominant pattern differs from numpy's"
        );
        let exact_pattern = pattern.iter().zip(want_p).all(|(a, b)| a == b);
        let want_h = &reference.floats[&format!("{name}/hoyer")];
        let want_c = &reference.floats[&format!("{name}/cos")];
        for i in 0..n * p {
            let dh = (hoyer[i] as f64 - want_h[i]).abs();
            assert!(
                dh <= 1e-4,
                "{fixture} {name} token {i}: Hoyer {} vs numpy {}",
                hoyer[i],
                want_h[i]
            );
            worst_torch = worst_torch.max(dh);
            if exact_pattern {
                let dc = (cos[i] as f64 - want_c[i]).abs();
                assert!(
                    dc <= 1e-4,
                    "{fixture} {name} token {i}: cos {} vs numpy {}",
                    cos[i],
                    want_c[i]
                );
                worst_torch = worst_torch.max(dc);
            }
        }
        let want_null = &reference.ints[&format!("{name}/null")];
        let null_ambig = &reference.ints[&format!("{name}/null_ambig")];
        let th = (reference.cos_min, reference.hoyer_min);
        let mut null_total = 0usize;
        for img in 0..n {
            let got = (0..p)
                .filter(|&k| {
                    let i = img * p + k;
                    cos[i] as f64 >= th.0 && hoyer[i] as f64 >= th.1
                })
                .count();
            null_total += got;
            if exact_pattern {
                assert!(
                    (got as i64 - want_null[img]).abs() <= null_ambig[img],
                    "{fixture} {name} image {img}: {got} null tokens vs numpy {} ({} ambiguous)",
                    want_null[img],
                    null_ambig[img]
                );
            }
        }
        assert_eq!(
            t.null_share,
            null_total as f64 / (n * p) as f64,
            "{fixture} {name}"
        );

        // The definitions over this tool's own activations.
        let k = model_taps.iter().position(|m| &m.name == name).unwrap();
        let x = &ours.taps[k];
        let mut near = 0usize;
        let mut null_own = 0usize;
        for i in 0..n * p {
            let (wh, wc) = probe_f64(&x[i * c..(i + 1) * c], &pattern);
            let (dh, dc) = ((hoyer[i] as f64 - wh).abs(), (cos[i] as f64 - wc).abs());
            assert!(
                dh <= 1e-6 && dc <= 1e-6,
                "{fixture} {name} token {i}: ({}, {}) vs f64 ({wh}, {wc})",
                hoyer[i],
                cos[i]
            );
            worst_own = worst_own.max(dh).max(dc);
            if (wc - th.0).abs() <= 1e-6 || (wh - th.1).abs() <= 1e-6 {
                near += 1;
            }
            if wc >= th.0 && wh >= th.1 {
                null_own += 1;
            }
        }
        assert!(
            (null_total as i64 - null_own as i64).unsigned_abs() as usize <= near,
            "{fixture} {name}: {null_total} null tokens vs {null_own} by the definition"
        );
        shares.push((t.kind, t.depth, p, t.null_share, name.clone()));
    }

    // Emergence by its definition: per kind, pooled share per depth, the largest positive rise.
    for kind in [TapKind::Block, TapKind::Hidden, TapKind::Other] {
        let mut depths: Vec<(usize, f64, f64, String)> = Vec::new();
        for (k, d, p, s, name) in &shares {
            if *k != kind {
                continue;
            }
            match depths.iter_mut().find(|e| e.0 == *d) {
                Some(e) => {
                    e.1 += s * *p as f64;
                    e.2 += *p as f64;
                    e.3 = name.clone();
                }
                None => depths.push((*d, s * *p as f64, *p as f64, name.clone())),
            }
        }
        if depths.is_empty() {
            continue;
        }
        depths.sort_by_key(|e| e.0);
        let got = report.emergence.iter().find(|e| e.kind == kind).unwrap();
        let rises: Vec<f64> = depths
            .windows(2)
            .map(|w| w[1].1 / w[1].2 - w[0].1 / w[0].2)
            .collect();
        let best =
            rises
                .iter()
                .enumerate()
                .fold(None, |b: Option<(usize, f64)>, (i, &r)| match b {
                    Some((_, br)) if br >= r => b,
                    _ => Some((i, r)),
                });
        match best {
            Some((i, r)) if r > 0.0 => {
                assert_eq!(got.depth, Some(depths[i + 1].0), "{fixture} {kind:?}");
                assert_eq!(got.tap.as_deref(), Some(depths[i + 1].3.as_str()));
                assert!((got.rise.unwrap() - r).abs() < 1e-12);
            }
            _ => assert!(
                got.tap.is_none() && got.reason.is_some(),
                "{fixture} {kind:?}"
            ),
        }
    }
    eprintln!(
        "{fixture}: {} taps; per-token Hoyer/cos vs numpy on PyTorch taps max {worst_torch:.2e}, \
         vs f64 on own taps max {worst_own:.2e}; emergence {:?}",
        report.taps.len(),
        report
            .emergence
            .iter()
            .map(|e| (e.kind, e.depth))
            .collect::<Vec<_>>()
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("nullcode.json")).unwrap()).unwrap();
    assert_eq!(json["taps"].as_array().unwrap().len(), report.taps.len());
    assert_eq!(json["thresholds"]["cos_min"], reference.cos_min);
}

#[test]
fn vit_tiny_matches_numpy_and_the_definitions() {
    check("vit_tiny");
}

#[test]
fn resnet18_matches_numpy_and_the_definitions() {
    check("resnet18");
}

#[test]
fn convnext_atto_matches_numpy_and_the_definitions() {
    check("convnext_atto");
}

/// The kernel's degenerate cases: a zero token has Hoyer 1 and cos 0; a one-hot token Hoyer 1;
/// a constant token Hoyer 0; a zero pattern gives cos 0; C = 1 gives Hoyer 1.
#[test]
fn probe_kernel_degenerate_cases() {
    let gpu = gpu();
    let c = 4;
    let x: Vec<f32> = vec![
        0.0, 0.0, 0.0, 0.0, // zero token
        0.0, 3.0, 0.0, 0.0, // one-hot
        2.0, 2.0, 2.0, 2.0, // constant
        1.0, -1.0, 0.5, 0.0, // mixed signs
    ];
    let rows = x.len() / c;
    let tx = gpu.upload("x", &[rows, c], &x).unwrap();
    for pattern in [vec![1.0f32, 1.0, 0.0, 0.0], vec![0.0; 4]] {
        let tp = gpu.upload("p", &[c], &pattern).unwrap();
        let ones = pattern.iter().filter(|&&v| v != 0.0).count();
        let th = gpu.zeros("h", &[rows]).unwrap();
        let tc = gpu.zeros("c", &[rows]).unwrap();
        let mut plan = Plan::default();
        plan.push(nullcode_probe(&gpu, &tx, &tp, ones, rows, &th, &tc).unwrap());
        plan.run(&gpu).unwrap();
        let (h, cs): (Vec<f32>, Vec<f32>) = (gpu.read(&th).unwrap(), gpu.read(&tc).unwrap());
        let pf: Vec<f64> = pattern.iter().map(|&v| v as f64).collect();
        for r in 0..rows {
            let (wh, wc) = probe_f64(&x[r * c..(r + 1) * c], &pf);
            assert!(
                (h[r] as f64 - wh).abs() < 1e-6,
                "row {r}: Hoyer {} vs {wh}",
                h[r]
            );
            assert!(
                (cs[r] as f64 - wc).abs() < 1e-6,
                "row {r}: cos {} vs {wc}",
                cs[r]
            );
        }
        assert_eq!((h[0], cs[0]), (1.0, 0.0));
        assert_eq!(h[1], 1.0);
        assert!(h[2].abs() < 1e-6);
        if ones == 0 {
            assert!(cs.iter().all(|&v| v == 0.0));
        }
    }
    // One channel: Hoyer is 1 by convention (sqrt(C) - 1 = 0).
    let t1 = gpu.upload("x1", &[2, 1], &[5.0f32, -2.0]).unwrap();
    let p1 = gpu.upload("p1", &[1], &[1.0f32]).unwrap();
    let (th, tc) = (gpu.zeros("h", &[2]).unwrap(), gpu.zeros("c", &[2]).unwrap());
    let mut plan = Plan::default();
    plan.push(nullcode_probe(&gpu, &t1, &p1, 1, 2, &th, &tc).unwrap());
    plan.run(&gpu).unwrap();
    assert_eq!(gpu.read::<f32>(&th).unwrap(), vec![1.0, 1.0]);
    assert_eq!(gpu.read::<f32>(&tc).unwrap(), vec![1.0, -1.0]);
}

/// A run whose firing rates are all <= 0.5 at a tap has an empty dominant pattern there:
/// every cosine is 0, no token is null (for cos_min > 0), and the table says 0/C.
#[test]
fn an_empty_dominant_pattern_gives_zero_cosines() {
    let (out, checkpoint, _, _) = make_run("resnet18", "empty-pattern");
    let rd = RunDir::open(&out).unwrap();
    let tap = rd.taps().unwrap()[0].clone();
    write_npy(
        rd.array_path(&tap.name, "firing_rate"),
        &[tap.channels],
        &vec![0.25f64; tap.channels],
    )
    .unwrap();
    let mut opts = options(&checkpoint, 0.5, 0.0);
    opts.taps = vec![tap.name.clone()];
    let report = nullcode_command(&out, &opts, &mut |_| {}).unwrap();
    assert_eq!(report.taps[0].dominant_channels, 0);
    assert_eq!(report.taps[0].null_share, 0.0);
    let (_, cos) = read_npy::<f32>(rd.array_path(&tap.name, "nullcode_cos")).unwrap();
    assert!(cos.iter().all(|&v| v == 0.0));
    assert!(report.table().contains(&format!("0/{}", tap.channels)));
}

#[test]
fn errors_name_the_problem() {
    let (out, checkpoint, _, _) = make_run("vit_tiny", "errors");
    let rd = RunDir::open(&out).unwrap();
    // A tap that is not in the run.
    let mut opts = options(&checkpoint, 0.5, 0.5);
    opts.taps = vec!["blocks.99".into()];
    let e = nullcode_command(&out, &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("blocks.99"), "{e}");
    // A run folder without the firing rates of a tap.
    let tap = rd.taps().unwrap()[1].name.clone();
    let rate = rd.array_path(&tap, "firing_rate");
    std::fs::remove_file(&rate).unwrap();
    let opts = options(&checkpoint, 0.5, 0.5);
    let e = nullcode_command(&out, &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("firing_rate.npy") && e.contains("dominant pattern"),
        "{e}"
    );
    // Another checkpoint than the run's.
    let (other, _) = common::fixture("resnet18").unwrap();
    let mut opts = options(&other, 0.5, 0.5);
    opts.taps = vec![rd.taps().unwrap()[0].name.clone()];
    assert_ne!(opts.taps[0], tap);
    let e = nullcode_command(&out, &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("sha256"), "{e}");
    // Not a run folder.
    let e = nullcode_command(Path::new("/nonexistent-run"), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("nonexistent-run"), "{e}");
}
