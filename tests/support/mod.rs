//! What every GPU test needs: the adapter (a test without one fails, never skips), seeded
//! random data, and a mismatch report naming index, expected and got. Include with
//! `mod support;`; each test crate uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use sparsescope::gpu::{Gpu, GpuOptions};

pub fn gpu() -> Gpu {
    match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!(
            "kernel tests need a wgpu adapter: {e}\n\
             (without a GPU: apt-get install -y mesa-vulkan-drivers)"
        ),
    }
}

/// xorshift64*: a tiny seeded generator so tests are reproducible without extra crates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Uniform in [0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Assert |got - want| <= atol + rtol * |want| everywhere; the message names the worst index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        // Negated on purpose: a NaN excess (a NaN on either side) fails too.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !(excess <= 0.0) && worst.is_none_or(|(_, e)| excess > e || excess.is_nan()) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        panic!(
            "{what}: index {i}: expected {}, got {} (|diff| {:.3e}, allowed {:.3e})",
            want[i],
            got[i],
            (got[i] - want[i]).abs(),
            atol + rtol * want[i].abs()
        );
    }
}
