//! Analyses built on the statistics of a run: representational similarity analysis (`rsa`) and
//! the ridge regression behind the pruning analysis (`ridge`). Pure CPU, f64, deterministic
//! for a given seed whatever the number of threads. The commands built on them: `rsa_report`
//! (`sparsescope rsa`), `prune` (`sparsescope prune`, with its GPU pass in `prune_pass`) and
//! `nullcode` (`sparsescope nullcode`, a second GPU pass with the `nullcode_probe` kernel).

pub mod nullcode;
pub mod prune;
pub mod prune_pass;
pub mod ridge;
pub mod rsa;
pub mod rsa_report;

/// splitmix64 (Steele, Lea, Flood 2014): the one generator behind every seeded resampling here,
/// chosen because it is three lines in any language, so `tests/golden/make_rsa_golden.py`
/// reproduces the same permutations and resamples bit for bit.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The generator of stream `index` of a seeded family (one per permutation or bootstrap
    /// sample, so that they can run in parallel): state seed + index * 0xD1B54A32D192ED03,
    /// xor `tag` (which keeps permutations and bootstrap samples of one seed apart).
    pub fn stream(seed: u64, tag: u64, index: u64) -> SplitMix64 {
        SplitMix64(seed.wrapping_add(index.wrapping_mul(0xD1B5_4A32_D192_ED03)) ^ tag)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in 0..n by `next_u64() % n` (the modulo bias, below n / 2^64, is irrelevant
    /// here and keeps the definition trivial to reproduce).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A uniform permutation of 0..n by Fisher-Yates: for i from n-1 down to 1, swap i with
    /// `below(i + 1)`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            p.swap(i, j);
        }
        p
    }
}

/// Open the run's model again for a second GPU pass (`prune`, `nullcode`): `model` or the path
/// the run recorded, checked against the run's sha256, with the run's architecture unless
/// `options` names one. `hint` ends the message when the file is not there.
pub fn open_run_model(
    gpu: &crate::gpu::Gpu,
    run: &crate::outdir::RunDir,
    model: Option<&std::path::Path>,
    options: &crate::model::ModelOptions,
    hint: &str,
) -> crate::error::Result<Box<dyn crate::model::Network>> {
    use crate::error::Error;
    let path = match model {
        Some(p) => p.to_path_buf(),
        None => run.model_path()?,
    };
    if !path.exists() {
        return Err(Error::file(
            &path,
            format!(
                "the run's model is not there (the path is relative to where `run` was \
                 started?); {hint}"
            ),
        ));
    }
    let want = run.summary["model"]["sha256"].as_str().unwrap_or_default();
    let got = crate::run::sha256_file(&path)?;
    if !want.is_empty() && got != want {
        return Err(Error::file(
            &path,
            format!(
                "sha256 {got} differs from the run's model ({want}); the second pass needs the \
                 run's checkpoint"
            ),
        ));
    }
    let mut model_options = options.clone();
    if model_options.arch.is_none() {
        model_options.arch = run.summary["model"]["arch"].as_str().map(str::to_string);
    }
    // The second pass must see the activations the run saw.
    model_options.f16_weights |= run.f16_weights();
    crate::model::load(gpu, &path, &model_options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs for seed 1234567 from the reference C implementation
        // (https://prng.di.unimi.it/splitmix64.c).
        let mut g = SplitMix64::new(1234567);
        let want = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for w in want {
            assert_eq!(g.next_u64(), w);
        }
    }
}
