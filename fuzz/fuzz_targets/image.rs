//! Arbitrary bytes through the image loader: an error is fine, a panic or a hang is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    sparsescope::fuzz::image(data);
});
