//! The seeded random projection used for flat features beyond the memory budget.
//!
//! S is a k x D sparse sign matrix, a count sketch (Charikar, Chen, Farach-Colton 2002) with
//! block-cyclic buckets: feature d (block b = d / k, position p = d % k) adds sign(d) x_d to
//! coordinate bucket(d) = (p + offset(b)) % k, with random offsets per block (multiples of 4,
//! so the kernel reads four features at once) and random signs
//! per feature from a counter-based hash of the seed (`shaders/rdm_sketch.wgsl` computes the
//! same 32-bit integer operations; S is never stored). Every feature lands in one bucket, so
//! sketching a row costs O(D) instead of the O(D k) of a dense projection, which would cost more
//! than the forward pass itself for the wide taps of a ViT.
//!
//! Error: <Sx, Sy> is an unbiased estimate of <x, y>. Its variance is the sum over pairs of
//! features d != e that can share a bucket (different blocks: probability 1/k) of
//! (x_d y_e + x_e y_d)^2 / k, i.e. (|x|^2 |y|^2 + <x,y>^2 - 2 sum_d x_d^2 y_d^2) / k minus the
//! pairs within a block, so it is at most that of a dense +-1/sqrt(k) Johnson-Lindenstrauss
//! projection: for unit vectors the standard deviation is at most sqrt((1 + <x,y>^2)/k) <=
//! sqrt(2/k). Correlation and cosine RDM entries are estimated as cosines of the sketched
//! (exactly centred) vectors; their error is of that order or smaller ((1 - r^2)/sqrt(k) to
//! first order for Gaussian-like data); squared euclidean distances have a relative standard
//! deviation of at most sqrt(2/k). `sqrt(2/k)` is the bound every summary states. (A sparse
//! sketch has heavier tails than a dense one for vectors whose energy sits in a few features;
//! the standard deviation, which is what is stated, is the same.)

/// The sketch dimension when none is given: sqrt(2/1024) = 0.044 expected error, and 4 KiB per
/// image per tap.
pub const DEFAULT_SKETCH_DIM: usize = 1024;

/// A 32-bit integer finaliser with low bias (Chris Wellons' "lowbias32").
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

fn keys(seed: u64) -> (u32, u32) {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    (
        mix32(lo ^ mix32(hi ^ 0x6f66_6673)),
        mix32(lo ^ mix32(hi ^ 0x7369_676e)),
    )
}

/// The sketch coordinate that feature `d` of a `k`-dimensional sketch adds to (`k` a multiple
/// of 4 below 2^18). A block's offset is a multiple of 4, so the kernel reads features by quads.
pub fn sketch_bucket(seed: u64, d: usize, k: usize) -> usize {
    let (key_offset, _) = keys(seed);
    let quads = (k / 4) as u64;
    let offset = 4 * (((mix32((d / k) as u32 ^ key_offset) >> 16) as u64 * quads) >> 16) as usize;
    (d % k + offset) % k
}

/// The sign (+1 or -1) with which feature `d` enters its bucket.
pub fn sketch_sign(seed: u64, d: usize) -> f64 {
    let (_, key_sign) = keys(seed);
    if mix32(d as u32 ^ key_sign) >> 31 == 1 {
        1.0
    } else {
        -1.0
    }
}

/// The bound on the standard deviation of a sketched inner product of unit vectors.
pub fn expected_error(k: usize) -> f64 {
    (2.0 / k as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_a_permutation_per_block_and_signs_balanced() {
        let k = 96;
        for b in 0..20 {
            let mut seen = vec![false; k];
            for p in 0..k {
                seen[sketch_bucket(7, b * k + p, k)] = true;
            }
            assert!(seen.iter().all(|&s| s), "block {b} misses a bucket");
        }
        let plus = (0..100_000).filter(|&d| sketch_sign(7, d) > 0.0).count();
        assert!(
            (plus as f64 / 1e5 - 0.5).abs() < 0.01,
            "share of +1: {plus}"
        );
        let same = (0..1000)
            .filter(|&d| sketch_sign(7, d) == sketch_sign(8, d))
            .count();
        assert!(
            (400..600).contains(&same),
            "seeds 7 and 8 agree on {same} of 1000 signs"
        );
    }
}
