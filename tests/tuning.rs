//! Kernel choices are timed once per adapter and read from the cache file afterwards; a corrupt
//! or unwritable cache never stops the tool.

use std::path::PathBuf;

use sparsescope::gpu::ops::AttentionVariant;
use sparsescope::gpu::tuning::Source;
use sparsescope::gpu::{Gpu, GpuOptions};

fn gpu_with_cache(dir: PathBuf) -> Gpu {
    Gpu::new(&GpuOptions {
        cache_dir: Some(dir),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("tuning tests need a wgpu adapter: {e}"))
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sparsescope-tuning-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn first_process_times_the_candidates_and_later_ones_read_the_file() {
    let dir = fresh_dir("cache");
    let first = gpu_with_cache(dir.clone());
    let t = first.tuning().clone();
    let Source::Timed { file, timings } = &t.source else {
        panic!("an empty cache must be timed: {:?}", t.source)
    };
    let file = file.clone().expect("a cache file");
    assert!(file.exists(), "{} not written", file.display());
    let names: Vec<&str> = timings.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"Tiled") && names.contains(&"Fused"),
        "{names:?}"
    );
    assert!(
        timings.iter().all(|(_, ms)| ms.is_finite() && *ms > 0.0),
        "{timings:?}"
    );
    // The chosen candidates are the fastest ones timed.
    let ms = |n: &str| timings.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    let matmul_name = format!("{:?}", t.choices.matmul);
    for other in ["Tiled", "Subgroup", "Texture"] {
        if let (Some(a), Some(b)) = (ms(&matmul_name), ms(other)) {
            assert!(a <= b, "{matmul_name} {a} ms chosen over {other} {b} ms");
        }
    }
    if first.is_cpu() && first.has_subgroups() {
        // lavapipe: one of the subgroup matmuls (from buffers or from textures, whichever
        // this machine runs faster) and the matmul path of attention win by 5-20x.
        eprintln!("timings on {}: {timings:?}", first.info.name);
        assert!(t.choices.matmul.is_subgroup(), "{timings:?}");
        assert!(
            ms("Subgroup").is_some() && ms("Texture").is_some(),
            "both subgroup kernels are timed on lavapipe: {timings:?}"
        );
        assert_eq!(t.choices.attention, AttentionVariant::Matmul, "{timings:?}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&first.info.name), "{text}");

    let second = gpu_with_cache(dir.clone());
    assert_eq!(second.tuning().source, Source::Cached(file.clone()));
    assert_eq!(second.choices(), t.choices);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_cache_is_timed_again_and_rewritten() {
    let dir = fresh_dir("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tuning.json");
    std::fs::write(&file, b"{ not json").unwrap();
    let gpu = gpu_with_cache(dir.clone());
    assert!(matches!(gpu.tuning().source, Source::Timed { .. }));
    let text = std::fs::read_to_string(&file).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(parsed.as_object().is_some_and(|o| o.len() == 1), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_cache_folder_is_not_an_error() {
    let dir = fresh_dir("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    // A regular file where the cache folder should be: nothing can be created under it.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let gpu = gpu_with_cache(blocker.join("cache"));
    assert!(matches!(gpu.tuning().source, Source::Timed { .. }));
    assert!(!blocker.join("cache").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
