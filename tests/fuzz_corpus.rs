//! The fuzz targets' entry points (src/fuzz.rs) on stable: every seed of fuzz/corpus/, every
//! prefix of it (truncation) and every single-byte corruption of its first 256 bytes (headers),
//! through the safetensors, image and .npy loaders. An error is fine; a panic fails the test.
//! Seeds must be accepted unchanged, so the corpus really reaches the decoders.

use std::path::Path;

fn seeds(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

fn exercise(kind: &str, entry: fn(&[u8]) -> bool) {
    let mut cases = 0;
    for (name, bytes) in seeds(kind) {
        assert!(entry(&bytes), "seed {kind}/{name} is not accepted");
        // Truncations: every prefix of the header region, then coarser steps.
        let step = (bytes.len() / 64).max(1);
        let mut cut = 0;
        while cut < bytes.len() {
            entry(&bytes[..cut]);
            cases += 1;
            cut += if cut < 256 { 1 } else { step };
        }
        // Corruptions: each of the first 256 bytes replaced by two values.
        for i in 0..bytes.len().min(256) {
            for v in [0x00u8, 0xff] {
                let mut m = bytes.clone();
                m[i] = v;
                entry(&m);
                cases += 1;
            }
        }
    }
    assert!(cases > 100, "{kind}: only {cases} cases");
}

#[test]
fn safetensors_loader_survives_its_corpus() {
    exercise("safetensors", sparsescope::fuzz::safetensors);
}

#[test]
fn image_decoder_survives_its_corpus() {
    exercise("image", sparsescope::fuzz::image);
}

#[test]
fn npy_reader_survives_its_corpus() {
    exercise("npy", sparsescope::fuzz::npy);
}
