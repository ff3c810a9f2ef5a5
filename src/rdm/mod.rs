//! Representational dissimilarity matrices (RDMs) from per-image features.
//!
//! Every measure of DESIGN.md follows from second-order sums of the feature vectors, so the
//! features themselves never need to reach the CPU: per-image sums ([`GramStats`]) and the
//! inner products of every pair, handed out a block of rows at a time by a [`GramSource`]
//! (exact f64 on the CPU for pooled features, [`FeatureGram`]; on the GPU from the rows that
//! [`GramAccumulator`] keeps for flat ones, exactly or as seeded sketches). [`stream_rdms`]
//! finalises any measure in f64 block by block, so RDMs of any N reach disk without an N x N
//! matrix in memory; a [`Gram`] gathers every block for the analyses that need them all.
//!
//! Definitions (normative, DESIGN.md "RDM measures"), for feature vectors x_i of dimension D:
//! - `correlation`: 1 - r, with r the Pearson correlation of x_i and x_j as vectors (each centred
//!   by its own scalar mean over its D entries). A constant vector has no direction, so its r with
//!   anything is defined as 0 (distance 1).
//! - `cosine`: 1 - x_i.x_j / (|x_i| |x_j|). A zero vector likewise has similarity 0 with every
//!   other vector (distance 1), the same convention as a constant vector under `correlation`.
//! - `euclidean`: |x_i - x_j|.
//!
//! An RDM is symmetric with an exact-zero diagonal (also for a constant or zero vector: an image
//! is never dissimilar from itself).

mod accumulator;
mod finalise;
mod gram;
mod sketch;

pub use accumulator::{FlatMode, FlatSource, GramAccumulator, GramVariant, plan_flat_modes};
pub use finalise::stream_rdms;
pub(crate) use gram::dot_f64;
pub use gram::{FeatureGram, Gram, GramSource, GramStats};
pub use sketch::{DEFAULT_SKETCH_DIM, expected_error, sketch_bucket, sketch_sign};

use crate::error::{Error, Result};

/// How two feature vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    Correlation,
    Cosine,
    Euclidean,
}

impl Measure {
    pub const ALL: [Measure; 3] = [Measure::Correlation, Measure::Cosine, Measure::Euclidean];

    /// The name used in file names (`rdm_flat_correlation.npy`) and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Correlation => "correlation",
            Measure::Cosine => "cosine",
            Measure::Euclidean => "euclidean",
        }
    }

    pub fn parse(s: &str) -> Result<Measure> {
        Measure::ALL
            .into_iter()
            .find(|m| m.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown RDM measure '{s}': expected correlation, cosine or euclidean"
                ))
            })
    }
}

/// A symmetric N x N dissimilarity matrix with an exact-zero diagonal, row-major, in image order.
#[derive(Debug, Clone, PartialEq)]
pub struct Rdm {
    n: usize,
    data: Vec<f64>,
}

impl Rdm {
    /// Check and wrap a full row-major matrix (e.g. an external RDM loaded from .npy or .csv).
    /// `what` names its source in error messages.
    pub fn from_full(what: &str, n: usize, data: Vec<f64>) -> Result<Rdm> {
        if data.len() != n * n {
            return Err(Error::shape(
                what,
                format!("{} values do not form an {n} x {n} matrix", data.len()),
            ));
        }
        for i in 0..n {
            if data[i * n + i] != 0.0 {
                return Err(Error::shape(
                    what,
                    format!(
                        "diagonal entry ({i}, {i}) is {}, an RDM has zeros on its diagonal",
                        data[i * n + i]
                    ),
                ));
            }
            for j in 0..i {
                let (a, b) = (data[i * n + j], data[j * n + i]);
                if !a.is_finite() {
                    return Err(Error::shape(what, format!("entry ({i}, {j}) is {a}")));
                }
                // Checked on both sides: a NaN fails every comparison, so the symmetry test
                // below would let one through and `symmetrise` would hide it.
                if !b.is_finite() {
                    return Err(Error::shape(what, format!("entry ({j}, {i}) is {b}")));
                }
                // An RDM saved through f32 (e.g. by MATLAB or a CSV export) may differ from its
                // transpose by a rounding; anything larger means a wrong matrix or order.
                if (a - b).abs() > 1e-6 * a.abs().max(b.abs()).max(1e-300) {
                    return Err(Error::shape(
                        what,
                        format!("not symmetric: entry ({i}, {j}) is {a} but ({j}, {i}) is {b}"),
                    ));
                }
            }
        }
        let mut rdm = Rdm { n, data };
        rdm.symmetrise();
        Ok(rdm)
    }

    /// Wrap a full row-major matrix built here (symmetric, zero diagonal by construction).
    pub(crate) fn from_rows(n: usize, data: Vec<f64>) -> Rdm {
        debug_assert_eq!(data.len(), n * n);
        Rdm { n, data }
    }

    /// Build from the upper triangle (i < j, row by row, as `upper()` returns it).
    pub fn from_upper(n: usize, upper: &[f64]) -> Result<Rdm> {
        if upper.len() != n * n.saturating_sub(1) / 2 {
            return Err(Error::shape(
                "rdm",
                format!(
                    "{} values are not the upper triangle of an {n} x {n} matrix",
                    upper.len()
                ),
            ));
        }
        let mut data = vec![0.0; n * n];
        let mut k = 0;
        for i in 0..n {
            for j in i + 1..n {
                data[i * n + j] = upper[k];
                data[j * n + i] = upper[k];
                k += 1;
            }
        }
        Ok(Rdm { n, data })
    }

    fn symmetrise(&mut self) {
        let n = self.n;
        for i in 0..n {
            self.data[i * n + i] = 0.0;
            for j in 0..i {
                self.data[j * n + i] = self.data[i * n + j];
            }
        }
    }

    /// The number of images.
    pub fn n(&self) -> usize {
        self.n
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.n + j]
    }

    /// The full matrix, row-major (for `.npy` output).
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// The n(n-1)/2 entries above the diagonal, row by row (the vector RSA compares).
    pub fn upper(&self) -> Vec<f64> {
        let n = self.n;
        let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for i in 0..n {
            out.extend_from_slice(&self.data[i * n + i + 1..(i + 1) * n]);
        }
        out
    }

    /// The mean over pairs i < j (decorrelation by depth is this of the flat correlation RDM).
    pub fn mean_upper(&self) -> Result<f64> {
        let pairs = self.n * self.n.saturating_sub(1) / 2;
        if pairs == 0 {
            return Err(Error::Undefined {
                what: "the mean dissimilarity over image pairs".into(),
                why: format!("{} image(s) form no pair", self.n),
            });
        }
        // Per-row sums then a total: deterministic and accurate to well below 1e-12 here.
        let total: f64 = (0..self.n)
            .map(|i| {
                self.data[i * self.n + i + 1..(i + 1) * self.n]
                    .iter()
                    .sum::<f64>()
            })
            .sum();
        Ok(total / pairs as f64)
    }

    /// The RDM of the same images reordered: entry (i, j) of the result is entry
    /// (order[i], order[j]) of this one. `order` may repeat indices (bootstrap resamples).
    pub fn select(&self, order: &[usize]) -> Rdm {
        let m = order.len();
        let mut data = vec![0.0; m * m];
        for (i, &oi) in order.iter().enumerate() {
            let row = &self.data[oi * self.n..(oi + 1) * self.n];
            for (j, &oj) in order.iter().enumerate() {
                data[i * m + j] = row[oj];
            }
        }
        Rdm { n: m, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], n: usize, d: usize, m: Measure) -> Vec<f64> {
        let row =
            |i: usize| -> Vec<f64> { x[i * d..(i + 1) * d].iter().map(|&v| v as f64).collect() };
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let (a, b) = (row(i), row(j));
                out[i * n + j] = match m {
                    Measure::Euclidean => a
                        .iter()
                        .zip(&b)
                        .map(|(p, q)| (p - q) * (p - q))
                        .sum::<f64>()
                        .sqrt(),
                    Measure::Cosine | Measure::Correlation => {
                        let (a, b) = if m == Measure::Correlation {
                            let ma = a.iter().sum::<f64>() / d as f64;
                            let mb = b.iter().sum::<f64>() / d as f64;
                            (
                                a.iter().map(|v| v - ma).collect::<Vec<_>>(),
                                b.iter().map(|v| v - mb).collect(),
                            )
                        } else {
                            (a, b)
                        };
                        let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
                        let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
                        if na == 0.0 || nb == 0.0 {
                            1.0
                        } else {
                            1.0 - a.iter().zip(&b).map(|(p, q)| p * q).sum::<f64>() / (na * nb)
                        }
                    }
                };
            }
        }
        out
    }

    #[test]
    fn cpu_gram_matches_naive_definitions() {
        let (n, d) = (37, 53);
        let mut s = 12345u64;
        let mut x: Vec<f32> = (0..n * d)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 1.0 + 3.0
            })
            .collect();
        // A constant row and a zero row exercise the conventions.
        x[5 * d..6 * d].fill(0.3);
        x[9 * d..10 * d].fill(0.0);
        let g = Gram::from_features(&x, n, d).unwrap();
        for m in Measure::ALL {
            let got = g.rdm(m);
            let want = naive(&x, n, d, m);
            for (k, (a, b)) in got.as_slice().iter().zip(&want).enumerate() {
                assert!((a - b).abs() < 1e-12, "{m:?} entry {k}: {a} vs {b}");
            }
            for i in 0..n {
                assert_eq!(got.get(i, i), 0.0);
            }
        }
    }

    /// A source with its blocks cut to `rows` rows.
    struct Blocks<S>(S, usize);

    impl<S: GramSource> GramSource for Blocks<S> {
        fn stats(&self) -> &GramStats {
            self.0.stats()
        }
        fn block_rows(&self) -> usize {
            self.1
        }
        fn block(&mut self, rows: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [f64]>> {
            self.0.block(rows)
        }
    }

    /// Streaming in blocks of any size gives the whole RDM bit for bit, and the decorrelation
    /// of `Rdm::mean_upper`.
    #[test]
    fn streamed_blocks_equal_the_whole_matrix() {
        let (n, d) = (23, 7);
        let x: Vec<f32> = (0..n * d).map(|k| ((k * 37 % 101) as f32).sin()).collect();
        let whole = Gram::from_features(&x, n, d).unwrap();
        for rows in [1, 4, 22, 23, 64] {
            let mut got = vec![Vec::new(); 3];
            let source = FeatureGram::new(&x, n, d).unwrap();
            let mean = stream_rdms(&mut Blocks(source, rows), &Measure::ALL, &mut |k, block| {
                got[k].extend_from_slice(block);
                Ok(())
            })
            .unwrap();
            for (k, m) in Measure::ALL.into_iter().enumerate() {
                assert_eq!(got[k], whole.rdm(m).as_slice(), "blocks of {rows}, {m:?}");
            }
            assert_eq!(
                mean,
                Some(whole.decorrelation().unwrap()),
                "blocks of {rows}"
            );
            // Without the correlation RDM among the measures, the decorrelation is the same.
            let source = FeatureGram::new(&x, n, d).unwrap();
            let alone = stream_rdms(
                &mut Blocks(source, rows),
                &[Measure::Cosine],
                &mut |_, _| Ok(()),
            )
            .unwrap();
            assert_eq!(alone, mean, "blocks of {rows}, cosine only");
        }
    }
}
