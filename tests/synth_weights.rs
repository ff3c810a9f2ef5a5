//! The golden-fixture machinery itself: the Rust weight generator reproduces make_golden.py's
//! bytes, every manifest turns into a checkpoint with its keys, shapes and dtype, the golden
//! files load in tap order, and the comparison helpers name what differs.

mod common;

use std::collections::BTreeSet;

use common::{
    Golden, Manifest, WeightDtype, assert_close, assert_close_shaped, compare_taps, fixture_names,
    generate_bytes, generate_f32, golden_path, manifest_path, prng_z, sha256_hex, synth_checkpoint,
};
use safetensors::SafeTensors;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    seed: u64,
    lo: f64,
    hi: f64,
    dtype: String,
    first16: Vec<String>,
    sha256_100000: String,
}

#[derive(Deserialize)]
struct RawZ {
    seed: u64,
    first16_z: Vec<String>,
}

#[derive(Deserialize)]
struct PrngCheck {
    cases: Vec<Case>,
    raw_z: RawZ,
    /// fixture -> key -> first 16 hex digits of the sha256 of the tensor's bytes.
    tensor_sha256: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
}

fn prng_check() -> PrngCheck {
    let path = common::golden_dir().join("prng_check.json");
    let text = std::fs::read_to_string(&path).expect("tests/golden/prng_check.json");
    serde_json::from_str(&text).expect("prng_check.json")
}

#[test]
fn splitmix_outputs_match_python() {
    let check = prng_check();
    let got: Vec<String> = (0..16)
        .map(|i| format!("0x{:016x}", prng_z(check.raw_z.seed, i)))
        .collect();
    assert_eq!(got, check.raw_z.first16_z);
}

#[test]
fn value_streams_match_python_bytes() {
    let check = prng_check();
    assert!(check.cases.len() >= 9, "prng_check.json has too few cases");
    for case in &check.cases {
        let dtype = WeightDtype::parse(&case.dtype).unwrap();
        let bytes = generate_bytes(case.seed, case.lo, case.hi, 100_000, dtype);
        let width = dtype.bytes();
        let first: Vec<String> = bytes
            .chunks_exact(width)
            .take(16)
            .map(|b| {
                let mut word = [0u8; 4];
                word[..width].copy_from_slice(b);
                format!("0x{:0w$x}", u32::from_le_bytes(word), w = 2 * width)
            })
            .collect();
        let what = format!(
            "seed {} U({}, {}) {}",
            case.seed, case.lo, case.hi, case.dtype
        );
        assert_eq!(first, case.first16, "first 16 values of {what}");
        assert_eq!(
            sha256_hex(&bytes),
            case.sha256_100000,
            "sha256 of 100000 values of {what}"
        );
    }
}

/// Every tensor of every manifest, generated from the manifest as parsed by serde_json, has the
/// bytes make_golden.py fed to PyTorch (this also proves lo/hi survive the JSON round trip).
#[test]
fn manifest_tensors_match_python_bytes() {
    let check = prng_check();
    let fixtures = fixture_names().unwrap();
    assert_eq!(
        fixtures.iter().collect::<BTreeSet<_>>(),
        check.tensor_sha256.keys().collect::<BTreeSet<_>>(),
        "fixtures with a manifest vs fixtures in prng_check.json"
    );
    for name in &fixtures {
        let m = Manifest::load(&manifest_path(name)).unwrap();
        let dtype = m.dtype().unwrap();
        let hashes = &check.tensor_sha256[name];
        assert_eq!(
            m.tensors.len(),
            hashes.len(),
            "{name}: manifest and prng_check.json list different tensors"
        );
        for t in &m.tensors {
            let bytes = generate_bytes(t.seed, t.lo, t.hi, t.len(), dtype);
            let want = hashes
                .get(&t.key)
                .unwrap_or_else(|| panic!("{name}: {} not in prng_check.json", t.key));
            assert_eq!(
                &sha256_hex(&bytes)[..want.len()],
                want.as_str(),
                "{name}: bytes of {} {:?}",
                t.key,
                t.shape
            );
        }
    }
}

#[test]
fn synthesised_checkpoints_have_the_manifest_tensors() {
    for name in fixture_names().unwrap() {
        let m = Manifest::load(&manifest_path(&name)).unwrap();
        let dtype = m.dtype().unwrap();
        let path = synth_checkpoint(&manifest_path(&name)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let file_keys: BTreeSet<&str> = st.names().into_iter().collect();
        let manifest_keys: BTreeSet<&str> = m.tensors.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(file_keys, manifest_keys, "{name}: keys");
        for t in &m.tensors {
            let view = st.tensor(&t.key).unwrap();
            assert_eq!(view.shape(), &t.shape[..], "{name}: shape of {}", t.key);
            assert_eq!(
                view.dtype(),
                dtype.safetensors(),
                "{name}: dtype of {}",
                t.key
            );
            assert_eq!(
                view.data().len(),
                t.len() * dtype.bytes(),
                "{name}: {}",
                t.key
            );
        }
        // The library's loader reads back the values the PyTorch model ran with (this covers
        // the bf16 path through dinov2_hf).
        let weights = sparsescope::model::weights::Weights::open(&path).unwrap();
        for t in m.tensors.iter().step_by(7) {
            let (shape, values) = weights.get_any(&t.key).unwrap();
            assert_eq!(shape, t.shape, "{name}: {}", t.key);
            let want = generate_f32(t.seed, t.lo, t.hi, t.len(), dtype);
            assert!(
                values
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: {} as loaded by Weights differs from the generated values",
                t.key
            );
        }
        // A second call reuses the file instead of rebuilding it.
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(synth_checkpoint(&manifest_path(&name)).unwrap(), path);
        let after = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(before, after, "{name}: a fresh checkpoint was rebuilt");
    }
}

#[test]
fn golden_files_load_in_tap_order() {
    for name in fixture_names().unwrap() {
        let m = Manifest::load(&manifest_path(&name)).unwrap();
        let g = Golden::load(&golden_path(&name)).unwrap();
        assert_eq!(g.fixture, name);
        assert_eq!(g.input.0, m.input_shape, "{name}: input shape");
        assert_eq!(g.input.1.len(), g.input.0.iter().product::<usize>());
        assert!(!g.taps.is_empty(), "{name}: no taps");
        let mut seen = BTreeSet::new();
        for (tap, shape, values) in &g.taps {
            assert!(seen.insert(tap), "{name}: tap {tap} twice");
            assert_eq!(
                values.len(),
                shape.iter().product::<usize>(),
                "{name}: {tap}"
            );
            assert!(
                values.iter().all(|v| v.is_finite()),
                "{name}: {tap} not finite"
            );
        }
        // The input is itself PRNG output (seed in make_golden.py), in [-1, 1).
        assert!(g.input.1.iter().all(|v| (-1.0..1.0).contains(v)));
    }
}

/// The tap lists are the public contract of the forward tests; pin their shape here.
#[test]
fn golden_tap_names_follow_the_contract() {
    let names = |f: &str| -> Vec<String> {
        Golden::load(&golden_path(f))
            .unwrap()
            .tap_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let mut vit = Vec::new();
    for i in 0..12 {
        vit.push(format!("blocks.{i}.mlp.act"));
        vit.push(format!("blocks.{i}"));
    }
    vit.push("norm".into());
    assert_eq!(names("vit_tiny"), vit);

    let mut dino = Vec::new();
    for i in 0..3 {
        dino.push(format!("encoder.layer.{i}.mlp.activation"));
        dino.push(format!("encoder.layer.{i}"));
    }
    dino.push("layernorm".into());
    assert_eq!(names("dinov2_hf"), dino);

    for (fixture, depths, bottleneck) in [
        ("resnet18", [2, 2, 2, 2], false),
        ("resnet50", [3, 4, 6, 3], true),
    ] {
        let mut want = vec!["act1".to_string()];
        for (s, &d) in depths.iter().enumerate() {
            for b in 0..d {
                want.push(format!("layer{}.{b}.act1", s + 1));
                if bottleneck {
                    want.push(format!("layer{}.{b}.act2", s + 1));
                }
                want.push(format!("layer{}.{b}", s + 1));
            }
        }
        assert_eq!(names(fixture), want, "{fixture}");
    }

    let mut eff = vec!["bn1".to_string()];
    for (s, d) in [1, 2, 2, 3, 3, 4, 1].into_iter().enumerate() {
        for b in 0..d {
            eff.push(format!("blocks.{s}.{b}.bn1"));
            // Stage 0 is a depthwise-separable block whose bn2 has no activation.
            if s > 0 {
                eff.push(format!("blocks.{s}.{b}.bn2"));
            }
            eff.push(format!("blocks.{s}.{b}"));
        }
    }
    eff.push("bn2".into());
    assert_eq!(names("efficientnet_lite0"), eff);

    let mut cnx = Vec::new();
    for (s, d) in [2, 2, 6, 2].into_iter().enumerate() {
        for b in 0..d {
            cnx.push(format!("stages.{s}.blocks.{b}.mlp.act"));
            cnx.push(format!("stages.{s}.blocks.{b}"));
        }
    }
    assert_eq!(names("convnext_atto"), cnx);

    let dino = Golden::load(&golden_path("dinov2_hf")).unwrap();
    assert!(dino.logits.is_none());
    let pos = dino
        .extra("embeddings.position_embeddings.interpolated")
        .expect("interpolated position table");
    assert_eq!(pos.1, vec![1, 26, 64]);
}

#[test]
fn f16_and_bf16_round_once_from_f64() {
    // 1 + 2^-11 is halfway between two f16 values: ties to even gives 1.0; a value a hair
    // above must round up, which a detour through f32 (where it becomes the tie) would miss.
    let tie = 1.0 + 2f64.powi(-11);
    assert_eq!(WeightDtype::F16.encode(tie).0, 0x3c00);
    assert_eq!(WeightDtype::F16.encode(tie + 2f64.powi(-40)).0, 0x3c01);
    let tie = 1.0 + 2f64.powi(-8);
    assert_eq!(WeightDtype::Bf16.encode(tie).0, 0x3f80);
    assert_eq!(WeightDtype::Bf16.encode(tie + 2f64.powi(-40)).0, 0x3f81);
    // f16 subnormal: 1.5 * 2^-24 is a tie between 2^-24 (odd) and 2^-23 (even).
    assert_eq!(WeightDtype::F16.encode(1.5 * 2f64.powi(-24)).0, 0x0002);
    assert_eq!(WeightDtype::F16.encode(-2f64.powi(-26)).0, 0x8000);
}

#[test]
#[should_panic(expected = "worst at index 5 = [1, 0, 2] of shape [2, 1, 3]: expected 6, got 7.5")]
fn assert_close_names_the_worst_element() {
    let want = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let got = [1.0, 2.0, 3.1, 4.0, 5.0, 7.5];
    assert_close_shaped("t", &[2, 1, 3], &got, &want, 1e-3, 0.0);
}

#[test]
#[should_panic(expected = "worst at index 1: expected 2, got NaN")]
fn assert_close_fails_on_nan() {
    assert_close("t", &[1.0, f32::NAN], &[1.0, 2.0], 1e-3, 1e-3);
}

#[test]
fn assert_close_accepts_within_tolerance() {
    let err = assert_close("t", &[1.0, 2.0005], &[1.0, 2.0], 1e-4, 1e-3);
    assert!((err - 0.0005).abs() < 1e-6);
}

fn toy_golden() -> Golden {
    Golden {
        fixture: "toy".into(),
        input: (vec![1, 3, 1, 1], vec![0.0; 3]),
        logits: None,
        taps: vec![
            ("a".into(), vec![1, 2, 1], vec![1.0, 2.0]),
            ("b".into(), vec![1, 1, 2], vec![3.0, 4.0]),
            ("c".into(), vec![1, 1, 1], vec![5.0]),
        ],
        extras: vec![],
    }
}

#[test]
#[should_panic(
    expected = "toy: tap `b` (#2 of 3 in forward order) is the first that differs: \
                           values: 1 of 2 values differ"
)]
fn compare_taps_names_the_first_differing_tap() {
    let g = toy_golden();
    // Both b and c are wrong; b comes first.
    let got = vec![
        ("a", vec![1.0, 2.0]),
        ("b", vec![3.0, 4.5]),
        ("c", vec![0.0]),
    ];
    compare_taps(&g, &got, 1e-4, 1e-4);
}

#[test]
#[should_panic(
    expected = "tap `c` (#3 of 3 in forward order) is the first that differs: \
                           the forward pass has no such tap"
)]
fn compare_taps_reports_a_missing_tap() {
    let g = toy_golden();
    let got = vec![("a", vec![1.0, 2.0]), ("b", vec![3.0, 4.0])];
    compare_taps(&g, &got, 1e-4, 1e-4);
}

#[test]
fn compare_taps_passes_and_ignores_extra_taps() {
    let g = toy_golden();
    let got = vec![
        ("stem", vec![9.0]),
        ("a", vec![1.0, 2.0]),
        ("b", vec![3.0, 4.0]),
        ("c", vec![5.00001]),
    ];
    let errs = compare_taps(&g, &got, 1e-4, 1e-4);
    assert_eq!(
        errs.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
}
