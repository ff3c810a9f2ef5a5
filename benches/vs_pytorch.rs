//! sparsescope against the PyTorch route on the same machine, in the same run:
//! vit_base_patch16_224 and resnet50 at batch 8, forward only and forward plus statistics on
//! both sides (benches/torch_hooks.py computes the same statistics in forward hooks).
//! Weights are timm's random init, exported once by the script (throughput does not depend on
//! them). A batch takes many seconds on a software adapter, beyond criterion's 10-sample
//! minimum, so this is a plain timed loop (`harness = false`) around `sparsescope::bench`,
//! which validates nothing itself: its plans are the ones the golden tests check.
//!
//! Each model runs SPARSESCOPE_VS_ROUNDS rounds (default 3) of sparsescope then PyTorch,
//! alternated, and prints each round's ratio and their median and range.
//!
//! Run: SPARSESCOPE_PYTHON=/path/to/python-with-torch cargo bench --bench vs_pytorch

use std::path::PathBuf;
use std::process::Command;

use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};

const BATCH: usize = 8;
const ITERS: usize = 3;

/// Rounds of (sparsescope, PyTorch) per model: SPARSESCOPE_VS_ROUNDS, default 3.
fn rounds() -> usize {
    std::env::var("SPARSESCOPE_VS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

fn python() -> String {
    std::env::var("SPARSESCOPE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(args: &[&str]) -> Option<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_hooks.py");
    let out = Command::new(python()).arg(path).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "PyTorch side unavailable: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let gpu =
        Gpu::new(&GpuOptions::default()).expect("an adapter (apt-get install mesa-vulkan-drivers)");
    println!(
        "adapter: {} ({:?}, {:?})",
        gpu.info.name, gpu.info.device_type, gpu.info.backend
    );
    for name in ["vit_base_patch16_224", "resnet50"] {
        let weights = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-weights"))
            .join(format!("{name}.safetensors"));
        if !weights.exists() {
            std::fs::create_dir_all(weights.parent().unwrap()).unwrap();
            if script(&["export", name, &weights.to_string_lossy()]).is_none() {
                println!("{name}: skipped (no weights: needs torch and timm to export them)");
                continue;
            }
        }
        let net = model::load(&gpu, &weights, &ModelOptions::default()).expect("load");
        // The two sides alternate, round by round: a shared machine's speed drifts by 10-30%
        // within minutes, so one side timed after the other can be favoured by chance; the
        // spread of the per-round ratios shows how much.
        let mut ratios = Vec::new();
        for round in 1..=rounds() {
            let r = sparsescope::bench::bench(&gpu, net.as_ref(), BATCH, ITERS).expect("bench");
            println!(
                "{name} batch {BATCH}, round {round}: sparsescope forward {:.3} images/s, forward+statistics {:.3} images/s (cost {:.2}x)",
                r.forward_images_per_s, r.stats_images_per_s, r.stats_cost_ratio
            );
            let Some(line) = script(&["time", name, &BATCH.to_string(), &ITERS.to_string()]) else {
                break;
            };
            let t: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
            let (fwd, hooks) = (
                t["forward_images_per_s"].as_f64().unwrap(),
                t["hooks_images_per_s"].as_f64().unwrap(),
            );
            println!(
                "{name} batch {BATCH}, round {round}: PyTorch {} CPU ({} threads) forward {fwd:.3} images/s, forward+hooks {hooks:.3} images/s (cost {:.2}x)",
                t["torch"],
                t["threads"],
                fwd / hooks
            );
            println!(
                "{name}, round {round}: sparsescope / PyTorch = {:.3} forward only, {:.3} with statistics",
                r.forward_images_per_s / fwd,
                r.stats_images_per_s / hooks
            );
            ratios.push(r.stats_images_per_s / hooks);
        }
        if !ratios.is_empty() {
            ratios.sort_by(f64::total_cmp);
            println!(
                "{name}: sparsescope / PyTorch with statistics over {} rounds: median {:.3}, range {:.3}..{:.3}",
                ratios.len(),
                ratios[ratios.len() / 2],
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
    }
}
