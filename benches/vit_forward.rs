//! Forward-only throughput of vit_base_patch16_224 at batch 8 on the adapter at hand, beside
//! PyTorch/timm's CPU forward measured in the same run (benches/torch_forward.py), and the
//! GFLOP/s the whole plan reaches.
//!
//! A batch takes tens of seconds on a software adapter, too long for criterion's 10-sample
//! minimum, so this is a plain timed loop (`harness = false`): one warm-up run (pipelines
//! compile lazily on the first dispatch), then `ITERS` timed runs that each wait for the queue.
//! Weights are random (throughput does not depend on them), written once under target/.
//!
//! Run: cargo bench --bench vit_forward   (SPARSESCOPE_PYTHON picks the Python with torch)

use std::path::{Path, PathBuf};
use std::time::Instant;

use sparsescope::extract::TapReader;
use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};

const BATCH: usize = 8;
const ITERS: usize = 2;

/// timm vit_base_patch16_224's tensors (names and shapes), filled with small random values.
fn write_vit_base(path: &Path) {
    let (d, depth, hidden, classes, p) = (768usize, 12usize, 3072usize, 1000usize, 16usize);
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("cls_token".into(), vec![1, 1, d]),
        ("pos_embed".into(), vec![1, 197, d]),
        ("patch_embed.proj.weight".into(), vec![d, 3, p, p]),
        ("patch_embed.proj.bias".into(), vec![d]),
    ];
    for i in 0..depth {
        let b = format!("blocks.{i}");
        for (k, s) in [
            ("norm1.weight", vec![d]),
            ("norm1.bias", vec![d]),
            ("attn.qkv.weight", vec![3 * d, d]),
            ("attn.qkv.bias", vec![3 * d]),
            ("attn.proj.weight", vec![d, d]),
            ("attn.proj.bias", vec![d]),
            ("norm2.weight", vec![d]),
            ("norm2.bias", vec![d]),
            ("mlp.fc1.weight", vec![hidden, d]),
            ("mlp.fc1.bias", vec![hidden]),
            ("mlp.fc2.weight", vec![d, hidden]),
            ("mlp.fc2.bias", vec![d]),
        ] {
            tensors.push((format!("{b}.{k}"), s));
        }
    }
    tensors.extend([
        ("norm.weight".into(), vec![d]),
        ("norm.bias".into(), vec![d]),
        ("head.weight".into(), vec![classes, d]),
        ("head.bias".into(), vec![classes]),
    ]);
    let mut state = 0x2545F4914F6CDD1Du64;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let scale = if name.ends_with("norm1.weight")
                || name.ends_with("norm2.weight")
                || name == "norm.weight"
            {
                0.0
            } else {
                0.02
            };
            let bytes = (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                    let v = if scale == 0.0 {
                        1.0
                    } else {
                        (u - 0.5) * 2.0 * scale
                    };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn torch_baseline() -> Option<serde_json::Value> {
    let python = std::env::var("SPARSESCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_forward.py");
    let out = std::process::Command::new(&python)
        .args([script, "vit_base_patch16_224", &BATCH.to_string(), "3"])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "PyTorch baseline unavailable ({python}): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    let weights = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/bench-weights/vit_base_patch16_224.safetensors"
    ));
    if !weights.exists() {
        write_vit_base(&weights);
    }
    let gpu =
        Gpu::new(&GpuOptions::default()).expect("an adapter (apt-get install mesa-vulkan-drivers)");
    let net = model::load(&gpu, &weights, &ModelOptions::default()).expect("load vit_base");
    let reader = TapReader::new(&gpu, net.as_ref(), BATCH, 224, 224, &[]).expect("plan");
    let input = vec![0.1f32; BATCH * 3 * 224 * 224];
    let warm = Instant::now();
    let first = reader.run(&gpu, &input, BATCH).expect("forward");
    assert!(
        first
            .logits
            .as_ref()
            .is_some_and(|l| l.iter().all(|v| v.is_finite())),
        "forward produced non-finite logits"
    );
    println!(
        "warm-up (pipeline compilation + 1 batch): {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for _ in 0..ITERS {
        reader.run(&gpu, &input, BATCH).expect("forward");
    }
    let seconds = start.elapsed().as_secs_f64() / ITERS as f64;
    let gflop = 17.56 * BATCH as f64; // timm's fvcore count: 17.56 GMAC = 35.1 GFLOP per image
    println!(
        "adapter: {} ({:?}, {:?})",
        gpu.info.name, gpu.info.device_type, gpu.info.backend
    );
    println!(
        "sparsescope vit_base_patch16_224 batch {BATCH}: {:.3} images/s, {:.1} s per batch, {:.1} GFLOP/s",
        BATCH as f64 / seconds,
        seconds,
        2.0 * gflop / seconds
    );
    if let Some(t) = torch_baseline() {
        let ips = t["images_per_s"].as_f64().unwrap_or(f64::NAN);
        println!(
            "PyTorch {} / timm {} CPU ({} threads), same run: {:.3} images/s; sparsescope/PyTorch = {:.3}",
            t["torch"],
            t["timm"],
            t["threads"],
            ips,
            BATCH as f64 / seconds / ips
        );
    }
}
