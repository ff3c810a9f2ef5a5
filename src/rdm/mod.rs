//! Representational dissimilarity matrices (RDMs) from per-image features.
//!
//! Every measure of DESIGN.md follows from second-order sums of the feature vectors, so the
//! features themselves never need to reach the CPU: a [`Gram`] holds those sums (accumulated
//! exactly on the CPU in f64 for pooled features, on the GPU by [`GramAccumulator`] for flat
//! ones, exactly or from a seeded sketch), and [`Gram::rdm`] finalises any measure in f64.
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
mod sketch;

pub use accumulator::{FlatMode, GramAccumulator, GramVariant, plan_flat_modes};
pub use sketch::{DEFAULT_SKETCH_DIM, expected_error, sketch_bucket, sketch_sign};

use rayon::prelude::*;

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

/// Below this ratio of centred to shifted squared norm a vector is treated as constant. A
/// GPU-accumulated `Gram` stores vectors shifted by an f32 estimate of their mean, so a constant
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

/// Second-order sums of N feature vectors x_i of dimension D, from which every measure follows.
///
/// For accuracy they are held in a shifted form: y_i = x_i - a_i e, with a_i close to the mean of
/// x_i (exact in f64 for CPU features, the f32 mean for GPU ones) and e the all-ones vector, and
/// - `yy[i, j]` = <y_i, y_j>, `ye[i]` = <y_i, e>, `ee` = <e, e> (= D),
/// - `centre[i]` = (sum of y_i's entries) / D, exact; so x_i's centred vector is y_i - centre_i e.
///
/// When the inner products are estimated from a random sketch S (k x D), `yy`, `ye` and `ee` are
/// those of S y_i and S e, while `shift` and `centre` stay exact, so that centring is exact and
/// only the angles carry the sketch's error. Pearson covariances then follow without the
/// cancellation of `G_ij - s_i s_j / D` on raw sums.
#[derive(Debug, Clone)]
pub struct Gram {
    n: usize,
    dim: usize,
    shift: Vec<f64>,
    centre: Vec<f64>,
    yy: Vec<f64>,
    ye: Vec<f64>,
    ee: f64,
    /// The sketch dimension k when `yy` is an estimate.
    sketch_dim: Option<usize>,
}

impl Gram {
    /// Exact f64 sums of the rows of `x` ([n, dim], f32 as stored), for pooled features and as
    /// the CPU reference of the GPU accumulator.
    pub fn from_features(x: &[f32], n: usize, dim: usize) -> Result<Gram> {
        if x.len() != n * dim {
            return Err(Error::shape(
                "rdm features",
                format!("{} values do not form [{n}, {dim}]", x.len()),
            ));
        }
        if dim == 0 {
            return Err(Error::shape(
                "rdm features",
                "feature vectors have 0 entries",
            ));
        }
        let mut shift = vec![0.0; n];
        let mut centre = vec![0.0; n];
        let mut y = vec![0.0f64; n * dim];
        for i in 0..n {
            let row = &x[i * dim..(i + 1) * dim];
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
            let yrow = &mut y[i * dim..(i + 1) * dim];
            for (o, &v) in yrow.iter_mut().zip(row) {
                *o = v as f64 - mean;
            }
            shift[i] = mean;
            centre[i] = yrow.iter().sum::<f64>() / dim as f64;
        }
        let ye: Vec<f64> = centre.iter().map(|c| c * dim as f64).collect();
        let yy = gram_f64(&y, n, dim);
        Ok(Gram {
            n,
            dim,
            shift,
            centre,
            yy,
            ye,
            ee: dim as f64,
            sketch_dim: None,
        })
    }

    /// Assemble from parts (the GPU accumulator's read-back). Shapes are checked.
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        n: usize,
        dim: usize,
        shift: Vec<f64>,
        centre: Vec<f64>,
        yy: Vec<f64>,
        ye: Vec<f64>,
        ee: f64,
        sketch_dim: Option<usize>,
    ) -> Result<Gram> {
        if shift.len() != n || centre.len() != n || ye.len() != n || yy.len() != n * n {
            return Err(Error::shape(
                "gram",
                format!(
                    "parts of lengths {}, {}, {}, {} do not describe {n} images",
                    shift.len(),
                    centre.len(),
                    ye.len(),
                    yy.len()
                ),
            ));
        }
        Ok(Gram {
            n,
            dim,
            shift,
            centre,
            yy,
            ye,
            ee,
            sketch_dim,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// The feature dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `Some(k)` when the inner products come from a k-dimensional sketch.
    pub fn sketch_dim(&self) -> Option<usize> {
        self.sketch_dim
    }

    /// The per-image means of the features (sum / D), in f64.
    pub fn means(&self) -> Vec<f64> {
        self.shift
            .iter()
            .zip(&self.centre)
            .map(|(a, c)| a + c)
            .collect()
    }

    /// <x_i, x_j> for the raw vectors x = y + a e.
    fn raw(&self, i: usize, j: usize) -> f64 {
        let (ai, aj) = (self.shift[i], self.shift[j]);
        self.yy[i * self.n + j] + aj * self.ye[i] + ai * self.ye[j] + ai * aj * self.ee
    }

    /// <x_i - mean_i, x_j - mean_j> = <y_i - c_i e, y_j - c_j e>.
    fn centred(&self, i: usize, j: usize) -> f64 {
        let (ci, cj) = (self.centre[i], self.centre[j]);
        self.yy[i * self.n + j] - cj * self.ye[i] - ci * self.ye[j] + ci * cj * self.ee
    }

    /// |x_i - x_j|^2 = |(y_i - y_j) + (a_i - a_j) e|^2, without forming the raw sums.
    fn squared_distance(&self, i: usize, j: usize) -> f64 {
        let n = self.n;
        let da = self.shift[i] - self.shift[j];
        let dy = self.yy[i * n + i] + self.yy[j * n + j] - 2.0 * self.yy[i * n + j];
        dy + 2.0 * da * (self.ye[i] - self.ye[j]) + da * da * self.ee
    }

    /// Whether x_i is constant (correlation) to the resolution of the sums.
    fn is_constant(&self, i: usize) -> bool {
        let c = self.centred(i, i);
        c <= CONSTANT_RTOL * self.yy[i * self.n + i].max(0.0)
    }

    /// The Gram of the same images over the union of disjoint feature sets, from one `Gram`
    /// per set (e.g. the channel groups of a tap, accumulated separately so that any union of
    /// groups can be finalised: the kept channels of every pruning level). Inner products over
    /// disjoint supports add; only the shifts need care. Each part is re-expressed around the
    /// combined shift m_i = sum_g D_g (a_ig + c_ig) / D (the mean of the union), with
    /// d_ig = a_ig - m_i:
    ///   yy_ij = sum_g yy_g,ij + d_jg ye_g,i + d_ig ye_g,j + d_ig d_jg ee_g,
    ///   ye_i = sum_g ye_g,i + d_ig ee_g,  ee = sum_g ee_g,  centre_i = sum_g D_g (c_ig + d_ig) / D.
    /// Every term is of the size of the features' spread, so centring stays as accurate as in
    /// each part (no cancellation of raw sums). Sketched parts give a sketched union (their
    /// errors add; `sketch_dim` is the smallest part's); exact and sketched parts do not mix.
    pub fn concat(parts: &[&Gram]) -> Result<Gram> {
        let Some(first) = parts.first() else {
            return Err(Error::shape("gram concat", "no parts to combine"));
        };
        let n = first.n;
        if let Some(p) = parts.iter().find(|p| p.n != n) {
            return Err(Error::shape(
                "gram concat",
                format!("parts of {} and {n} images", p.n),
            ));
        }
        let sketched = parts.iter().filter(|p| p.sketch_dim.is_some()).count();
        if sketched != 0 && sketched != parts.len() {
            return Err(Error::shape(
                "gram concat",
                "exact and sketched parts cannot be combined",
            ));
        }
        let dim: usize = parts.iter().map(|p| p.dim).sum();
        let shift: Vec<f64> = (0..n)
            .map(|i| {
                parts
                    .iter()
                    .map(|p| p.dim as f64 * (p.shift[i] + p.centre[i]))
                    .sum::<f64>()
                    / dim as f64
            })
            .collect();
        let mut yy = vec![0.0; n * n];
        let mut ye = vec![0.0; n];
        let mut centre = vec![0.0; n];
        let mut ee = 0.0;
        for p in parts {
            let d: Vec<f64> = (0..n).map(|i| p.shift[i] - shift[i]).collect();
            yy.par_chunks_mut(n.max(1))
                .enumerate()
                .for_each(|(i, row)| {
                    let src = &p.yy[i * n..(i + 1) * n];
                    for (j, o) in row.iter_mut().enumerate() {
                        *o += src[j] + d[j] * p.ye[i] + d[i] * p.ye[j] + d[i] * d[j] * p.ee;
                    }
                });
            for i in 0..n {
                ye[i] += p.ye[i] + d[i] * p.ee;
                centre[i] += p.dim as f64 * (p.centre[i] + d[i]);
            }
            ee += p.ee;
        }
        for c in &mut centre {
            *c /= dim as f64;
        }
        let sketch_dim = parts.iter().filter_map(|p| p.sketch_dim).min();
        Gram::from_parts(n, dim, shift, centre, yy, ye, ee, sketch_dim)
    }

    /// The RDM of `measure`, finalised in f64.
    pub fn rdm(&self, measure: Measure) -> Rdm {
        let n = self.n;
        let mut data = vec![0.0; n * n];
        match measure {
            Measure::Correlation => {
                let norm: Vec<f64> = (0..n)
                    .map(|i| {
                        if self.is_constant(i) {
                            0.0
                        } else {
                            self.centred(i, i).sqrt()
                        }
                    })
                    .collect();
                fill_upper(&mut data, n, |i, j| {
                    if norm[i] == 0.0 || norm[j] == 0.0 {
                        1.0
                    } else {
                        1.0 - snap_unit(self.centred(i, j) / (norm[i] * norm[j]))
                    }
                });
            }
            Measure::Cosine => {
                let norm: Vec<f64> = (0..n).map(|i| self.raw(i, i).max(0.0).sqrt()).collect();
                fill_upper(&mut data, n, |i, j| {
                    if norm[i] == 0.0 || norm[j] == 0.0 {
                        1.0
                    } else {
                        1.0 - snap_unit(self.raw(i, j) / (norm[i] * norm[j]))
                    }
                });
            }
            Measure::Euclidean => {
                fill_upper(&mut data, n, |i, j| {
                    self.squared_distance(i, j).max(0.0).sqrt()
                });
            }
        }
        Rdm { n, data }
    }

    /// Decorrelation (DESIGN.md): the mean over pairs i < j of the correlation distance.
    pub fn decorrelation(&self) -> Result<f64> {
        self.rdm(Measure::Correlation).mean_upper()
    }
}

/// Fill entries i < j from `f` and mirror them; the diagonal stays exactly 0.
fn fill_upper(data: &mut [f64], n: usize, f: impl Fn(usize, usize) -> f64 + Sync) {
    data.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate().skip(i + 1) {
                *v = f(i, j);
            }
        });
    for i in 0..n {
        for j in 0..i {
            data[i * n + j] = data[j * n + i];
        }
    }
}

/// The full symmetric Gram matrix y y^T of [n, dim] rows in f64. Tiles of rows keep both
/// operands in cache; rows of tiles run in parallel. Each entry is one sequential f64 dot
/// product, so the result does not depend on the thread count.
fn gram_f64(y: &[f64], n: usize, dim: usize) -> Vec<f64> {
    const TILE: usize = 32;
    let mut g = vec![0.0; n * n];
    g.par_chunks_mut((TILE * n).max(1))
        .enumerate()
        .for_each(|(ti, block)| {
            let i0 = ti * TILE;
            let rows = block.len() / n;
            for j0 in (0..=i0 + rows - 1).step_by(TILE) {
                for ii in 0..rows {
                    let i = i0 + ii;
                    let yi = &y[i * dim..(i + 1) * dim];
                    for j in j0..(j0 + TILE).min(i + 1) {
                        let yj = &y[j * dim..(j + 1) * dim];
                        block[ii * n + j] = dot_f64(yi, yj);
                    }
                }
            }
        });
    for i in 0..n {
        for j in 0..i {
            g[j * n + i] = g[i * n + j];
        }
    }
    g
}

/// A dot product in four interleaved f64 partial sums (vectorises; fixed order).
fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for l in 0..4 {
            acc[l] += a[4 * c + l] * b[4 * c + l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for k in chunks * 4..a.len() {
        s += a[k] * b[k];
    }
    s
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
}
