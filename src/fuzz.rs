//! Entry points of the fuzz targets (fuzz/, cargo-fuzz on nightly) and of the seed-corpus test
//! (tests/fuzz_corpus.rs, stable): arbitrary bytes through each loader of user files. Each
//! returns whether the bytes were accepted; an error is fine, a panic is a bug.

use std::io::Write;
use std::path::PathBuf;

use crate::data::{Preprocess, decode_rgb8};
use crate::model::weights::Weights;

/// The loaders read files; the bytes go to a per-process, per-call temporary file.
fn temp_file(ext: &str, data: &[u8]) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("sparsescope-fuzz-{}-{n}.{ext}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("temporary file");
    f.write_all(data).expect("temporary file");
    path
}

/// Open as a checkpoint and read every tensor as f32.
pub fn safetensors(data: &[u8]) -> bool {
    let path = temp_file("safetensors", data);
    let ok = Weights::open(&path).is_ok_and(|w| w.raw_keys().iter().all(|k| w.get_any(k).is_ok()));
    let _ = std::fs::remove_file(&path);
    ok
}

/// Decode as an image and preprocess to a 32x32 network input.
pub fn image(data: &[u8]) -> bool {
    let pre =
        Preprocess::imagenet(32, 0.875, crate::data::Interpolation::Bicubic).expect("valid preset");
    match decode_rgb8(data, std::path::Path::new("fuzz-input")) {
        Ok(img) => {
            let v = pre.apply(&img);
            assert!(v.iter().all(|x| x.is_finite()), "non-finite preprocessing");
            true
        }
        Err(_) => false,
    }
}

/// Read as a .npy: the header, then the data as f32 and as rows.
pub fn npy(data: &[u8]) -> bool {
    let path = temp_file("npy", data);
    let ok = crate::npy::read_header(&path).is_ok();
    let _ = crate::npy::read_npy_f32(&path);
    let _ = crate::npy::read_npy::<u64>(&path);
    if let Ok(mut r) = crate::npy::NpyRowReader::open(&path) {
        let rows = r.rows();
        let _ = r.read_rows(0, rows.min(4));
    }
    let _ = std::fs::remove_file(&path);
    ok
}
