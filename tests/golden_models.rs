//! Every tap and the logits of tiny random-weight models against PyTorch (timm / transformers),
//! from the fixtures tests/golden/make_golden.py writes. Weights are regenerated from each
//! manifest's recipe (tests/common), so git holds only inputs and reference activations.
//! A failure names the first tap that differs. With `--f16-weights`, vit_tiny and convnext_atto
//! against PyTorch run with the same f16-rounded weights (tests/golden/make_f16w_golden.py).

mod common;
mod support;

use std::path::Path;

use common::golden::Golden;
use sparsescope::extract::TapReader;
use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};
use support::gpu;

/// Absolute and relative tolerance per element. The fixtures' activations are O(1) to O(10);
/// PyTorch (oneDNN) and the GPU kernels sum in different orders, which moves f32 results by a
/// few 1e-6 relative per layer; 1e-4 leaves room for that across 12 blocks and still catches
/// any real error (a wrong eps, a missing bias or scale, a misordered weight shows as >1e-2).
const ATOL: f32 = 1e-4;
const RTOL: f32 = 1e-4;

fn check(fixture: &str, options: ModelOptions) {
    let (checkpoint, golden) = common::fixture(fixture).unwrap();
    check_against(fixture, &checkpoint, &golden, options);
}

/// With `--f16-weights`, against `<fixture>.f16w.golden.safetensors`: PyTorch run with the
/// fixture's conv and linear weights rounded to f16 (tests/golden/make_f16w_golden.py), which
/// moves the taps by 1.4e-3 to 8e-3 from the f32 golden.
fn check_f16_weights(fixture: &str) {
    let checkpoint = common::synth_checkpoint(&common::manifest_path(fixture)).unwrap();
    let golden = Golden::load(&common::golden_path(&format!("{fixture}.f16w"))).unwrap();
    let options = ModelOptions {
        f16_weights: true,
        ..Default::default()
    };
    check_against(
        &format!("{fixture} (f16 weights)"),
        &checkpoint,
        &golden,
        options,
    );
}

fn check_against(fixture: &str, checkpoint: &Path, golden: &Golden, options: ModelOptions) {
    let gpu = gpu();
    let net = model::load(&gpu, checkpoint, &options).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let (n, h, w) = golden.input_nhw();
    let taps = net.taps(h, w).unwrap();
    let all: Vec<usize> = (0..taps.len()).collect();
    let reader = TapReader::new(&gpu, net.as_ref(), n, h, w, &all).unwrap();
    let got = reader.run(&gpu, &golden.input.1, n).unwrap();
    let named: Vec<(&str, &[f32])> = taps
        .iter()
        .map(|t| t.name.as_str())
        .zip(got.taps.iter().map(Vec::as_slice))
        .collect();
    assert_eq!(
        taps.len(),
        golden.taps.len(),
        "{fixture}: the model has {} taps, the golden file {}",
        taps.len(),
        golden.taps.len()
    );
    let errors = common::golden::compare_taps(golden, &named, ATOL, RTOL);
    let worst = errors.iter().map(|(_, e)| *e).fold(0.0f32, f32::max);
    eprintln!(
        "{fixture}: {} taps match, worst max abs error {worst:.2e}",
        errors.len()
    );
    match (&golden.logits, &got.logits) {
        (Some(_), Some(l)) => {
            let e = common::golden::compare_logits(golden, l, ATOL, RTOL);
            eprintln!("{fixture}: logits max abs error {e:.2e}");
        }
        (None, None) => {}
        (want, have) => panic!(
            "{fixture}: golden logits {} but model logits {}",
            want.is_some(),
            have.is_some()
        ),
    }
}

#[test]
fn vit_tiny_timm() {
    check("vit_tiny", ModelOptions::default());
}

#[test]
fn dinov2_hf_names_layerscale_interpolated_positions_bf16() {
    // 64 wide with 4 heads: heads are not in the tensors, so they are given.
    check(
        "dinov2_hf",
        ModelOptions {
            heads: Some(4),
            ..Default::default()
        },
    );
}

#[test]
fn resnet18() {
    check("resnet18", ModelOptions::default());
}

#[test]
fn resnet50() {
    check("resnet50", ModelOptions::default());
}

#[test]
fn efficientnet_lite0_timm() {
    check("efficientnet_lite0", ModelOptions::default());
}

#[test]
fn convnext_atto() {
    check("convnext_atto", ModelOptions::default());
}

#[test]
fn vit_tiny_timm_f16_weights() {
    check_f16_weights("vit_tiny");
}

#[test]
fn convnext_atto_f16_weights() {
    check_f16_weights("convnext_atto");
}

/// A batch whose activations exceed the adapter's buffer limit is not refused: `fit_batch`
/// halves it until the forward pass fits, and the taps computed in the smaller batches equal
/// those of one full batch on the adapter's own limits (whose taps match PyTorch above). The
/// buffer limit is lowered to just under the largest tap of the full batch, above the largest
/// weight tensor (weights are bound whole).
#[test]
fn batch_over_the_buffer_limit_runs_smaller_and_matches_the_full_batch() {
    let (checkpoint, golden) = common::fixture("vit_tiny").unwrap();
    let (_, h, w) = golden.input_nhw();
    let bytes = std::fs::read(&checkpoint).unwrap();
    let largest_weight = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>() as u64 * 4)
        .max()
        .unwrap();
    let full = gpu();
    let net = model::load(&full, &checkpoint, &ModelOptions::default()).unwrap();
    let taps = net.taps(h, w).unwrap();
    let largest_tap = taps.iter().map(|t| t.positions * t.channels).max().unwrap() as u64 * 4;
    let n = (2 * largest_weight.div_ceil(largest_tap) as usize + 2).next_power_of_two();
    let limit = largest_tap * n as u64 - 16;
    let input = common::generate_f32(5, -2.0, 2.0, n * 3 * h * w, common::WeightDtype::F32);
    let all: Vec<usize> = (0..taps.len()).collect();
    let want = TapReader::new(&full, net.as_ref(), n, h, w, &all)
        .unwrap()
        .run(&full, &input, n)
        .unwrap();

    let small = Gpu::new(&GpuOptions {
        lower_limits: sparsescope::gpu::LowerLimits {
            max_buffer_size: Some(limit),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let net = model::load(&small, &checkpoint, &ModelOptions::default()).unwrap();
    let mut said = Vec::new();
    let batch = model::fit_batch(&small, net.as_ref(), n, (h, w), &mut |m| said.push(m)).unwrap();
    assert!(batch < n, "{said:?}");
    assert!(
        said[0].contains(&format!("batch {n} does not fit"))
            && said[0].contains(&limit.to_string()),
        "{said:?}"
    );
    let reader = TapReader::new(&small, net.as_ref(), batch, h, w, &all).unwrap();
    let per_image = 3 * h * w;
    let mut got: Vec<Vec<f32>> = vec![Vec::new(); taps.len()];
    for i in (0..n).step_by(batch) {
        let k = batch.min(n - i);
        let out = reader
            .run(&small, &input[i * per_image..(i + k) * per_image], k)
            .unwrap();
        for (t, v) in out.taps.into_iter().enumerate() {
            got[t].extend(v);
        }
    }
    for (t, info) in taps.iter().enumerate() {
        common::assert_close(&info.name, &got[t], &want.taps[t], 0.0, 0.0);
    }
    eprintln!(
        "vit_tiny: batch {n} over a {limit}-byte buffer limit ran as batch {batch}; {} taps equal",
        taps.len()
    );
}
