//! Second-order sums of per-image feature vectors, from which every RDM measure follows.
//!
//! For accuracy they are held in a shifted form: y_i = x_i - a_i e, with a_i close to the mean of
//! x_i (exact in f64 for CPU features, the f32 mean for GPU ones) and e the all-ones vector:
//! - `yy[i, j]` = <y_i, y_j> (its diagonal also in [`GramStats`]), `ye[i]` = <y_i, e>,
//!   `ee` = <e, e> (= D),
//! - `centre[i]` = (sum of y_i's entries) / D, exact; so x_i's centred vector is y_i - centre_i e.
//!
//! When the inner products are estimated from a random sketch S (k x D), `yy`, `ye` and `ee` are
//! those of S y_i and S e, while `shift` and `centre` stay exact, so that centring is exact and
//! only the angles carry the sketch's error. Pearson covariances then follow without the
//! cancellation of `G_ij - s_i s_j / D` on raw sums.
//!
//! The per-image parts ([`GramStats`], O(N)) and the N x N inner products are kept apart: a
//! [`GramSource`] hands out the inner products a block of rows at a time (the GPU accumulator
//! computes them block by block from its store, [`FeatureGram`] from CPU features), so RDMs of
//! any N stream to disk through `stream_rdms` without an N x N matrix in memory. A [`Gram`]
//! holds them all, for the analyses that combine Grams (`concat`) or need a whole RDM.

use std::borrow::Cow;
use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rdm::finalise::Finaliser;
use crate::rdm::{Measure, Rdm};

/// Everything of a Gram but its off-diagonal inner products: the per-image sums.
#[derive(Debug, Clone)]
pub struct GramStats {
    n: usize,
    dim: usize,
    shift: Vec<f64>,
    centre: Vec<f64>,
    /// <y_i, y_i>, exactly as the inner products of the full matrix give it.
    diag: Vec<f64>,
    ye: Vec<f64>,
    ee: f64,
    /// The sketch dimension k when the inner products are estimates.
    sketch_dim: Option<usize>,
}

impl GramStats {
    /// Assemble from parts (e.g. the GPU accumulator's read-back). Lengths are checked.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        dim: usize,
        shift: Vec<f64>,
        centre: Vec<f64>,
        diag: Vec<f64>,
        ye: Vec<f64>,
        ee: f64,
        sketch_dim: Option<usize>,
    ) -> Result<GramStats> {
        if shift.len() != n || centre.len() != n || diag.len() != n || ye.len() != n {
            return Err(Error::shape(
                "gram",
                format!(
                    "parts of lengths {}, {}, {}, {} do not describe {n} images",
                    shift.len(),
                    centre.len(),
                    diag.len(),
                    ye.len()
                ),
            ));
        }
        Ok(GramStats {
            n,
            dim,
            shift,
            centre,
            diag,
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

    /// <x_i, x_j> for the raw vectors x = y + a e, from g = <y_i, y_j>.
    pub(crate) fn raw(&self, i: usize, j: usize, g: f64) -> f64 {
        let (ai, aj) = (self.shift[i], self.shift[j]);
        g + aj * self.ye[i] + ai * self.ye[j] + ai * aj * self.ee
    }

    /// <x_i - mean_i, x_j - mean_j> = <y_i - c_i e, y_j - c_j e>, from g = <y_i, y_j>.
    pub(crate) fn centred(&self, i: usize, j: usize, g: f64) -> f64 {
        let (ci, cj) = (self.centre[i], self.centre[j]);
        g - cj * self.ye[i] - ci * self.ye[j] + ci * cj * self.ee
    }

    /// |x_i - x_j|^2 = |(y_i - y_j) + (a_i - a_j) e|^2, without forming the raw sums.
    pub(crate) fn squared_distance(&self, i: usize, j: usize, g: f64) -> f64 {
        let da = self.shift[i] - self.shift[j];
        let dy = self.diag[i] + self.diag[j] - 2.0 * g;
        dy + 2.0 * da * (self.ye[i] - self.ye[j]) + da * da * self.ee
    }

    /// <y_i, y_i>.
    pub(crate) fn diag(&self, i: usize) -> f64 {
        self.diag[i]
    }
}

/// The inner products <y_i, y_j> of N images, a block of rows at a time, beside their
/// [`GramStats`]. Entry (i, j) must equal entry (j, i) bit for bit (each is one dot product in a
/// fixed order), so that the RDMs built from the rows are exactly symmetric.
pub trait GramSource {
    fn stats(&self) -> &GramStats;
    /// Rows per block that keep one block's buffers small.
    fn block_rows(&self) -> usize;
    /// Rows `rows` of the N x N inner products, row-major `[rows.len(), N]`.
    fn block(&mut self, rows: Range<usize>) -> Result<Cow<'_, [f64]>>;
}

/// All second-order sums of N images, the N x N inner products included. See the module
/// comment.
#[derive(Debug, Clone)]
pub struct Gram {
    stats: GramStats,
    yy: Vec<f64>,
}

impl Gram {
    /// Exact f64 sums of the rows of `x` ([n, dim], f32 as stored), for pooled features and as
    /// the CPU reference of the GPU accumulator.
    pub fn from_features(x: &[f32], n: usize, dim: usize) -> Result<Gram> {
        Gram::collect(&mut FeatureGram::new(x, n, dim)?)
    }

    /// Every block of `source`, gathered into one N x N matrix.
    pub fn collect(source: &mut dyn GramSource) -> Result<Gram> {
        let n = source.stats().n;
        let step = source.block_rows().max(1);
        let mut yy = Vec::with_capacity(n * n);
        for r0 in (0..n).step_by(step) {
            yy.extend_from_slice(&source.block(r0..(r0 + step).min(n))?);
        }
        Ok(Gram {
            stats: source.stats().clone(),
            yy,
        })
    }

    /// The per-image sums.
    pub fn stats(&self) -> &GramStats {
        &self.stats
    }

    pub fn n(&self) -> usize {
        self.stats.n
    }

    /// The feature dimension D.
    pub fn dim(&self) -> usize {
        self.stats.dim
    }

    /// `Some(k)` when the inner products come from a k-dimensional sketch.
    pub fn sketch_dim(&self) -> Option<usize> {
        self.stats.sketch_dim
    }

    /// The per-image means of the features (sum / D), in f64.
    pub fn means(&self) -> Vec<f64> {
        self.stats.means()
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
        let n = first.n();
        if let Some(p) = parts.iter().find(|p| p.n() != n) {
            return Err(Error::shape(
                "gram concat",
                format!("parts of {} and {n} images", p.n()),
            ));
        }
        let sketched = parts.iter().filter(|p| p.sketch_dim().is_some()).count();
        if sketched != 0 && sketched != parts.len() {
            return Err(Error::shape(
                "gram concat",
                "exact and sketched parts cannot be combined",
            ));
        }
        let dim: usize = parts.iter().map(|p| p.dim()).sum();
        let shift: Vec<f64> = (0..n)
            .map(|i| {
                parts
                    .iter()
                    .map(|p| p.dim() as f64 * (p.stats.shift[i] + p.stats.centre[i]))
                    .sum::<f64>()
                    / dim as f64
            })
            .collect();
        let mut yy = vec![0.0; n * n];
        let mut ye = vec![0.0; n];
        let mut centre = vec![0.0; n];
        let mut ee = 0.0;
        for p in parts {
            let s = &p.stats;
            let d: Vec<f64> = (0..n).map(|i| s.shift[i] - shift[i]).collect();
            yy.par_chunks_mut(n.max(1))
                .enumerate()
                .for_each(|(i, row)| {
                    let src = &p.yy[i * n..(i + 1) * n];
                    for (j, o) in row.iter_mut().enumerate() {
                        *o += src[j] + d[j] * s.ye[i] + d[i] * s.ye[j] + d[i] * d[j] * s.ee;
                    }
                });
            for i in 0..n {
                ye[i] += s.ye[i] + d[i] * s.ee;
                centre[i] += s.dim as f64 * (s.centre[i] + d[i]);
            }
            ee += s.ee;
        }
        for c in &mut centre {
            *c /= dim as f64;
        }
        let diag = (0..n).map(|i| yy[i * n + i]).collect();
        let sketch_dim = parts.iter().filter_map(|p| p.sketch_dim()).min();
        let stats = GramStats::new(n, dim, shift, centre, diag, ye, ee, sketch_dim)?;
        Ok(Gram { stats, yy })
    }

    /// The RDM of `measure`, finalised in f64.
    pub fn rdm(&self, measure: Measure) -> Rdm {
        let n = self.n();
        let mut data = vec![0.0; n * n];
        Finaliser::new(&self.stats, measure).fill_rows(0, &self.yy, &mut data);
        Rdm::from_rows(n, data)
    }

    /// Decorrelation (DESIGN.md): the mean over pairs i < j of the correlation distance.
    pub fn decorrelation(&self) -> Result<f64> {
        self.rdm(Measure::Correlation).mean_upper()
    }
}

impl GramSource for Gram {
    fn stats(&self) -> &GramStats {
        &self.stats
    }

    fn block_rows(&self) -> usize {
        self.n()
    }

    fn block(&mut self, rows: Range<usize>) -> Result<Cow<'_, [f64]>> {
        let n = self.n();
        Ok(Cow::Borrowed(&self.yy[rows.start * n..rows.end * n]))
    }
}

/// Inner products of CPU features in f64, computed block by block from the shifted rows.
pub struct FeatureGram {
    stats: GramStats,
    /// y_i = x_i - mean_i in f64, [n, dim].
    y: Vec<f64>,
}

/// Entries of one block of inner products (4 MiB of f64).
const BLOCK_ENTRIES: usize = 1 << 19;

impl FeatureGram {
    /// `x` holds [n, dim] features (f32 as stored).
    pub fn new(x: &[f32], n: usize, dim: usize) -> Result<FeatureGram> {
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
        let diag = (0..n)
            .map(|i| {
                let yi = &y[i * dim..(i + 1) * dim];
                dot_f64(yi, yi)
            })
            .collect();
        let stats = GramStats::new(n, dim, shift, centre, diag, ye, dim as f64, None)?;
        Ok(FeatureGram { stats, y })
    }
}

impl GramSource for FeatureGram {
    fn stats(&self) -> &GramStats {
        &self.stats
    }

    fn block_rows(&self) -> usize {
        (BLOCK_ENTRIES / self.stats.n.max(1)).max(1)
    }

    /// Tiles of 32 x 32 rows keep both operands in cache; rows of tiles run in parallel. Each
    /// entry is one sequential f64 dot product, so the result does not depend on the thread
    /// count or the block, and (j, i) equals (i, j).
    fn block(&mut self, rows: Range<usize>) -> Result<Cow<'_, [f64]>> {
        const TILE: usize = 32;
        let (n, dim) = (self.stats.n, self.stats.dim);
        let y = &self.y;
        let mut out = vec![0.0; rows.len() * n];
        out.par_chunks_mut((TILE * n).max(1))
            .enumerate()
            .for_each(|(ti, tile)| {
                let i0 = rows.start + ti * TILE;
                let tile_rows = tile.len() / n;
                for j0 in (0..n).step_by(TILE) {
                    for ii in 0..tile_rows {
                        let yi = &y[(i0 + ii) * dim..(i0 + ii + 1) * dim];
                        for j in j0..(j0 + TILE).min(n) {
                            tile[ii * n + j] = dot_f64(yi, &y[j * dim..(j + 1) * dim]);
                        }
                    }
                }
            });
        Ok(Cow::Owned(out))
    }
}

/// A dot product in four interleaved f64 partial sums (vectorises; fixed order).
pub(crate) fn dot_f64(a: &[f64], b: &[f64]) -> f64 {
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
