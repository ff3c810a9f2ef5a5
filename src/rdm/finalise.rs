//! From inner products to dissimilarities: every measure of DESIGN.md finalised in f64, for a
//! whole in-memory [`Gram`](super::Gram) or streamed block by block from any [`GramSource`].

use rayon::prelude::*;

use crate::error::Result;
use crate::rdm::Measure;
use crate::rdm::gram::{GramSource, GramStats};

/// Below this ratio of centred to shifted squared norm a vector is treated as constant. A
/// GPU-accumulated Gram stores vectors shifted by an f32 estimate of their mean, so a constant
/// vector keeps a residual of an f32 rounding of its mean, and its centred norm is that residual
/// times the ~1e-6 relative accuracy of f32 sums. Any vector whose entries differ by more than
/// a hundredth of an f32 ulp of its mean in enough places clears the threshold by orders of
/// magnitude; f64 sums of CPU features give exactly zero for a constant vector.
const CONSTANT_RTOL: f64 = 1e-4;

/// A correlation or cosine within this of +-1 is +-1. Such vectors are proportional in exact
/// arithmetic (duplicate images; or two channels, whose centred vectors all lie on one line),
/// so their RDM entries are exactly 0 or 2 and tie; left to the rounding of each entry's sums
/// (~1e-16 here), the ties would break at random and decide rank-based RSA. Genuine
/// correlations are never this close to +-1 without being exactly so at f64 resolution.
const UNIT_SNAP: f64 = 1e-12;

fn snap_unit(r: f64) -> f64 {
    let r = r.clamp(-1.0, 1.0);
    if 1.0 - r.abs() <= UNIT_SNAP {
        r.signum()
    } else {
        r
    }
}

/// One measure over the images of one [`GramStats`], with the per-image norms it needs.
pub(crate) struct Finaliser<'a> {
    stats: &'a GramStats,
    measure: Measure,
    /// Correlation: the centred norm (0 for a constant vector); cosine: the raw norm.
    norm: Vec<f64>,
}

impl<'a> Finaliser<'a> {
    pub(crate) fn new(stats: &'a GramStats, measure: Measure) -> Finaliser<'a> {
        let n = stats.n();
        let norm = match measure {
            Measure::Correlation => (0..n)
                .map(|i| {
                    let g = stats.diag(i);
                    let c = stats.centred(i, i, g);
                    // Constant to the resolution of the sums.
                    if c <= CONSTANT_RTOL * g.max(0.0) {
                        0.0
                    } else {
                        c.sqrt()
                    }
                })
                .collect(),
            Measure::Cosine => (0..n)
                .map(|i| stats.raw(i, i, stats.diag(i)).max(0.0).sqrt())
                .collect(),
            Measure::Euclidean => Vec::new(),
        };
        Finaliser {
            stats,
            measure,
            norm,
        }
    }

    /// The dissimilarity of images i and j from g = <y_i, y_j>: 0 on the diagonal, and
    /// evaluated with the smaller index first, so that (j, i) equals (i, j) bit for bit.
    pub(crate) fn entry(&self, i: usize, j: usize, g: f64) -> f64 {
        if i == j {
            return 0.0;
        }
        let (i, j) = (i.min(j), i.max(j));
        let s = self.stats;
        match self.measure {
            Measure::Correlation | Measure::Cosine => {
                let (ni, nj) = (self.norm[i], self.norm[j]);
                if ni == 0.0 || nj == 0.0 {
                    return 1.0;
                }
                let dot = if self.measure == Measure::Correlation {
                    s.centred(i, j, g)
                } else {
                    s.raw(i, j, g)
                };
                1.0 - snap_unit(dot / (ni * nj))
            }
            Measure::Euclidean => s.squared_distance(i, j, g).max(0.0).sqrt(),
        }
    }

    /// Dissimilarities of rows `r0..` from their inner products `yy` ([rows, N]) into `out`.
    pub(crate) fn fill_rows(&self, r0: usize, yy: &[f64], out: &mut [f64]) {
        let n = self.stats.n().max(1);
        out.par_chunks_mut(n)
            .zip(yy.par_chunks(n))
            .enumerate()
            .for_each(|(r, (o, g))| {
                for (j, (v, &gij)) in o.iter_mut().zip(g).enumerate() {
                    *v = self.entry(r0 + r, j, gij);
                }
            });
    }
}

/// Finalise the RDMs of `measures` from `source` a block of rows at a time, handing each block
/// (`[rows, N]` f64, in image order) to `sink` with the index of its measure in `measures`, so
/// that no N x N matrix is ever held. Returns the decorrelation, the mean over pairs i < j of the
/// correlation distance (`None` for fewer than two images), taken from the correlation RDM when
/// `measures` asks for it and computed beside the others when it does not.
pub fn stream_rdms(
    source: &mut dyn GramSource,
    measures: &[Measure],
    sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
) -> Result<Option<f64>> {
    let stats = source.stats().clone();
    let n = stats.n();
    let step = source.block_rows().max(1);
    let finalisers: Vec<Finaliser> = measures
        .iter()
        .map(|&m| Finaliser::new(&stats, m))
        .collect();
    let asked = measures.iter().position(|&m| m == Measure::Correlation);
    let correlation = asked
        .is_none()
        .then(|| Finaliser::new(&stats, Measure::Correlation));
    let mut out = Vec::new();
    let mut total = 0.0;
    for r0 in (0..n).step_by(step) {
        let r1 = (r0 + step).min(n);
        let yy = source.block(r0..r1)?;
        out.resize((r1 - r0) * n, 0.0);
        for (k, f) in finalisers.iter().enumerate() {
            f.fill_rows(r0, &yy, &mut out);
            if asked == Some(k) {
                add_upper(&mut total, r0, n, &out);
            }
            sink(k, &out)?;
        }
        if let Some(f) = &correlation {
            f.fill_rows(r0, &yy, &mut out);
            add_upper(&mut total, r0, n, &out);
        }
    }
    let pairs = n * n.saturating_sub(1) / 2;
    Ok((pairs > 0).then(|| total / pairs as f64))
}

/// Add the entries right of the diagonal of rows `r0..` ([rows, n]) to `total`: per-row sums,
/// added in row order, so that the result does not depend on how the rows are blocked and
/// equals `Rdm::mean_upper`'s sum.
fn add_upper(total: &mut f64, r0: usize, n: usize, rows: &[f64]) {
    let row_sums: Vec<f64> = rows
        .par_chunks(n)
        .enumerate()
        .map(|(r, row)| row[r0 + r + 1..].iter().sum::<f64>())
        .collect();
    for s in row_sums {
        *total += s;
    }
}
