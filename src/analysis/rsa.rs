//! Representational similarity analysis: how alike two RDMs of the same images are.
//!
//! Every comparison uses the n = N(N-1)/2 entries above the diagonal (i < j), row by row.
//! - Spearman (the default): the Pearson correlation of the entries' ranks, tied entries sharing
//!   their average rank (scipy.stats.spearmanr).
//! - Pearson: of the entries themselves.
//! - Kendall tau-a: (concordant - discordant pairs of entries) / (n(n-1)/2), tied pairs counting
//!   as neither (rsatoolbox's `tau-a`; scipy's `kendalltau` default is tau-b). Knight's
//!   O(n log n) algorithm: sort by one RDM, count inversions of the other by merge sort.
//!
//! A permutation test relabels the images of the second RDM (entry (i, j) becomes
//! (p(i), p(j)) for a random permutation p), which keeps its structure but breaks its
//! correspondence with the first: p = (1 + #{permuted >= observed}) / (1 + permutations),
//! one-sided, as rsatoolbox and Kriegeskorte et al. (2008) do. Bootstrap confidence intervals
//! resample images with replacement; entries pairing an image with a copy of itself are dropped
//! (their dissimilarity is 0 by definition, not data), and the interval is the percentile one.
//! Both draw from `SplitMix64` streams documented in `analysis/mod.rs`, so a seed gives the same
//! result on every machine and thread count, and the golden script reproduces it exactly.
//!
//! Speed for N in the thousands (n in the millions): the entries are ranked once; a permutation
//! of Spearman or Pearson is then one pass over the matrix gathering the permuted rows (O(N^2),
//! no sort); a bootstrap sample of Spearman or Pearson is weighted ranks over the original
//! entries (each entry (i, j) weighted by count_i * count_j), again O(N^2) with no sort.
//! Kendall's permutations and samples re-count inversions, O(N^2 log N) each. Permutations and
//! samples run in parallel (rayon).

// `!(x > y)` on purpose throughout: a NaN must fail the test, not pass it.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use rayon::prelude::*;

use crate::analysis::SplitMix64;
use crate::error::{Error, Result};
use crate::rdm::Rdm;

/// How two RDMs are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Spearman,
    Pearson,
    #[serde(rename = "kendall")]
    KendallTauA,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Spearman, Method::Pearson, Method::KendallTauA];

    pub fn name(self) -> &'static str {
        match self {
            Method::Spearman => "spearman",
            Method::Pearson => "pearson",
            Method::KendallTauA => "kendall",
        }
    }

    pub fn parse(s: &str) -> Result<Method> {
        match s.to_ascii_lowercase().as_str() {
            "spearman" => Ok(Method::Spearman),
            "pearson" => Ok(Method::Pearson),
            "kendall" | "kendall-tau-a" | "tau-a" | "taua" => Ok(Method::KendallTauA),
            other => Err(Error::Usage(format!(
                "unknown RSA method '{other}': expected spearman, pearson or kendall (tau-a)"
            ))),
        }
    }
}

/// Tags that keep the permutation and bootstrap streams of one seed apart.
const TAG_PERMUTATION: u64 = 0x7065_726d_7574_6521; // "permute!"
const TAG_BOOTSTRAP: u64 = 0x626f_6f74_7374_7261; // "bootstra"

/// A tolerance for "permuted >= observed": the statistic of a permutation that reproduces the
/// observed arrangement may differ from it by a rounding of the summation order.
const TIE_TOLERANCE: f64 = 1e-12;

/// Sums in fixed chunks, chunk sums added in order: deterministic for any thread count.
fn det_sum(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    const CHUNK: usize = 1 << 15;
    let parts: Vec<f64> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| (c * CHUNK..((c + 1) * CHUNK).min(n)).map(&f).sum::<f64>())
        .collect();
    parts.iter().sum()
}

fn check_values(what: &str, v: &[f64]) -> Result<()> {
    if let Some(k) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::Undefined {
            what: what.into(),
            why: format!("entry {k} of the upper triangle is {}", v[k]),
        });
    }
    Ok(())
}

/// An f64's bits mapped so that unsigned integer order is `f64::total_cmp` order: sorting
/// plain integer keys held next to their positions is several times faster than comparing
/// through an index into the values.
fn order_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Positions 0..v.len() sorted by value (ties by position), in parallel.
fn sort_order(v: &[f64]) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = v
        .par_iter()
        .enumerate()
        .map(|(k, &x)| (order_key(x), k as u32))
        .collect();
    keyed.par_sort_unstable();
    keyed.into_par_iter().map(|(_, k)| k).collect()
}

/// Average ranks (1-based, ties share their mean rank), as scipy.stats.rankdata.
pub fn rank_average(v: &[f64]) -> Vec<f64> {
    let order = sort_order(v);
    let mut ranks = vec![0.0; v.len()];
    let mut s = 0;
    while s < order.len() {
        let mut e = s + 1;
        while e < order.len() && v[order[e] as usize] == v[order[s] as usize] {
            e += 1;
        }
        let r = (s + e + 1) as f64 / 2.0;
        for &o in &order[s..e] {
            ranks[o as usize] = r;
        }
        s = e;
    }
    ranks
}

/// `v` centred and scaled to unit norm, or an error naming it when it is constant.
fn standardise(what: &str, v: &[f64]) -> Result<Vec<f64>> {
    let n = v.len();
    let mean = det_sum(n, |k| v[k]) / n as f64;
    let ss = det_sum(n, |k| (v[k] - mean) * (v[k] - mean));
    // Relative to the values' scale, so that rounding noise of a constant does not pass.
    let scale = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if !(ss > (1e-13 * scale).powi(2) * n as f64) {
        return Err(Error::Undefined {
            what: what.into(),
            why: format!("its {n} entries are all equal ({mean}), it has no rank or correlation"),
        });
    }
    let inv = 1.0 / ss.sqrt();
    Ok(v.par_iter().map(|x| (x - mean) * inv).collect())
}

fn check_pair(a: &Rdm, b: &Rdm) -> Result<()> {
    if a.n() != b.n() {
        return Err(Error::shape(
            "rsa",
            format!(
                "the RDMs are of {} and {} images; RSA compares RDMs of the same images in the same order",
                a.n(),
                b.n()
            ),
        ));
    }
    if a.n() < 3 {
        return Err(Error::Undefined {
            what: "RSA".into(),
            why: format!(
                "{} image(s) give {} dissimilarities; a correlation needs 3 images or more",
                a.n(),
                a.n() * a.n().saturating_sub(1) / 2
            ),
        });
    }
    Ok(())
}

/// An RDM's upper triangle made ready for repeated comparisons with `method`: standardised
/// (ranks for Spearman) for the correlations, raw for Kendall.
#[derive(Debug, Clone)]
pub struct Prepared {
    n_images: usize,
    method: Method,
    values: Vec<f64>,
}

impl Prepared {
    /// `what` names the RDM in error messages (e.g. "RDM of blocks.3").
    pub fn new(what: &str, rdm: &Rdm, method: Method) -> Result<Prepared> {
        let upper = rdm.upper();
        check_values(what, &upper)?;
        let values = match method {
            Method::Pearson => standardise(what, &upper)?,
            Method::Spearman => {
                // A constant vector has constant ranks: report the value, not its rank.
                if upper
                    .first()
                    .is_some_and(|&v0| upper.iter().all(|&v| v == v0))
                {
                    standardise(what, &upper)?;
                }
                standardise(what, &rank_average(&upper))?
            }
            Method::KendallTauA => {
                // Constant data has no tau either; reuse the same check and message.
                standardise(what, &upper)?;
                upper
            }
        };
        Ok(Prepared {
            n_images: rdm.n(),
            method,
            values,
        })
    }

    /// The RSA of two prepared RDMs.
    pub fn compare(&self, other: &Prepared) -> Result<f64> {
        if self.n_images != other.n_images || self.method != other.method {
            return Err(Error::shape(
                "rsa",
                format!(
                    "RDMs of {} and {} images ({} vs {}) cannot be compared",
                    self.n_images,
                    other.n_images,
                    self.method.name(),
                    other.method.name()
                ),
            ));
        }
        if self.n_images < 3 {
            return Err(Error::Undefined {
                what: "RSA".into(),
                why: "a correlation needs 3 images or more".into(),
            });
        }
        Ok(match self.method {
            Method::Pearson | Method::Spearman => {
                let (a, b) = (&self.values, &other.values);
                det_sum(a.len(), |k| a[k] * b[k]).clamp(-1.0, 1.0)
            }
            Method::KendallTauA => kendall_tau_a(&self.values, &other.values),
        })
    }
}

/// RSA between two RDMs of the same images.
pub fn rsa(a: &Rdm, b: &Rdm, method: Method) -> Result<f64> {
    check_pair(a, b)?;
    let pa = Prepared::new("the first RDM", a, method)?;
    let pb = Prepared::new("the second RDM", b, method)?;
    pa.compare(&pb)
}

/// RSA of two equally long vectors of dissimilarities (e.g. an upper triangle and an external
/// one already flattened), with the same definitions as `rsa`.
pub fn compare_vectors(a: &[f64], b: &[f64], method: Method) -> Result<f64> {
    if a.len() != b.len() {
        return Err(Error::shape(
            "rsa",
            format!("vectors of {} and {} dissimilarities", a.len(), b.len()),
        ));
    }
    if a.len() < 2 {
        return Err(Error::Undefined {
            what: "RSA".into(),
            why: format!("{} dissimilarities; a correlation needs 2 or more", a.len()),
        });
    }
    check_values("the first vector", a)?;
    check_values("the second vector", b)?;
    match method {
        Method::Pearson => {
            let (x, y) = (
                standardise("the first vector", a)?,
                standardise("the second vector", b)?,
            );
            Ok(det_sum(x.len(), |k| x[k] * y[k]).clamp(-1.0, 1.0))
        }
        Method::Spearman => {
            let x = standardise("the first vector", &rank_average(a))?;
            let y = standardise("the second vector", &rank_average(b))?;
            Ok(det_sum(x.len(), |k| x[k] * y[k]).clamp(-1.0, 1.0))
        }
        Method::KendallTauA => {
            standardise("the first vector", a)?;
            standardise("the second vector", b)?;
            Ok(kendall_tau_a(a, b))
        }
    }
}

/// t(t-1)/2 summed over the runs of equal values of `v` in the order `order`.
fn tie_pairs_in_order(v: &[f64], order: &[u32]) -> i64 {
    let mut total = 0i64;
    let mut s = 0;
    while s < order.len() {
        let mut e = s + 1;
        while e < order.len() && v[order[e] as usize] == v[order[s] as usize] {
            e += 1;
        }
        let t = (e - s) as i64;
        total += t * (t - 1) / 2;
        s = e;
    }
    total
}

/// Kendall's tau-a of x and y (no NaN; equal lengths >= 2).
pub fn kendall_tau_a(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len();
    // Sort by (x, y): within a run of equal x, y ascends, so no inversion is counted there.
    let mut keyed: Vec<(u64, u64, u32)> = (0..n)
        .into_par_iter()
        .map(|k| (order_key(x[k]), order_key(y[k]), k as u32))
        .collect();
    keyed.par_sort_unstable();
    let order: Vec<u32> = keyed.into_par_iter().map(|(_, _, k)| k).collect();
    let x_ties = tie_pairs_in_order(x, &order);
    // Joint ties: runs equal in both x and y (adjacent after the sort).
    let mut joint = 0i64;
    let mut s = 0;
    while s < n {
        let mut e = s + 1;
        let (xs, ys) = (x[order[s] as usize], y[order[s] as usize]);
        while e < n && x[order[e] as usize] == xs && y[order[e] as usize] == ys {
            e += 1;
        }
        let t = (e - s) as i64;
        joint += t * (t - 1) / 2;
        s = e;
    }
    let mut ys: Vec<f64> = order.iter().map(|&o| y[o as usize]).collect();
    let discordant = count_inversions(&mut ys);
    // `ys` is now sorted: its runs are the ties in y.
    let y_ties = {
        let idx: Vec<u32> = (0..n as u32).collect();
        tie_pairs_in_order(&ys, &idx)
    };
    let total = (n as i64) * (n as i64 - 1) / 2;
    let con_minus_dis = total - x_ties - y_ties + joint - 2 * discordant;
    con_minus_dis as f64 / total as f64
}

/// The number of pairs i < j with v[i] > v[j] (strictly), sorting `v` ascending on the way:
/// bottom-up merge sort.
pub fn count_inversions(v: &mut [f64]) -> i64 {
    let n = v.len();
    let mut buf = vec![0.0; n];
    let mut inversions = 0i64;
    let mut width = 1;
    let mut src_is_v = true;
    while width < n {
        inversions += if src_is_v {
            merge_pass(v, &mut buf, width)
        } else {
            merge_pass(&buf, v, width)
        };
        src_is_v = !src_is_v;
        width *= 2;
    }
    if !src_is_v {
        v.copy_from_slice(&buf);
    }
    inversions
}

/// Merge runs of `width` from `src` into `dst`, returning the inversions between runs.
fn merge_pass(src: &[f64], dst: &mut [f64], width: usize) -> i64 {
    let n = src.len();
    let pairs: Vec<(usize, &mut [f64])> = dst
        .chunks_mut(2 * width)
        .enumerate()
        .map(|(k, d)| (k * 2 * width, d))
        .collect();
    pairs
        .into_par_iter()
        .map(|(lo, out)| {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (left, right) = (&src[lo..mid], &src[mid..hi]);
            let (mut i, mut j, mut k) = (0, 0, 0);
            let mut inv = 0i64;
            while i < left.len() && j < right.len() {
                // Equal values are not inversions: take from the left first.
                if right[j] < left[i] {
                    out[k] = right[j];
                    inv += (left.len() - i) as i64;
                    j += 1;
                } else {
                    out[k] = left[i];
                    i += 1;
                }
                k += 1;
            }
            out[k..k + left.len() - i].copy_from_slice(&left[i..]);
            k += left.len() - i;
            out[k..k + right.len() - j].copy_from_slice(&right[j..]);
            inv
        })
        .sum()
}

/// The result of a permutation test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PermutationTest {
    pub observed: f64,
    pub p_value: f64,
    /// How many permuted statistics reached the observed one.
    pub exceed: usize,
    pub permutations: usize,
    pub seed: u64,
}

/// The permutations of a test: permutation k is `SplitMix64::stream(seed, TAG_PERMUTATION, k)
/// .permutation(n)`.
pub fn test_permutations(n: usize, count: usize, seed: u64) -> impl Iterator<Item = Vec<usize>> {
    (0..count as u64).map(move |k| SplitMix64::stream(seed, TAG_PERMUTATION, k).permutation(n))
}

/// The pairs (i, j), i < j, in upper-triangle order.
fn pair_indices(n: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            out.push((i as u32, j as u32));
        }
    }
    out
}

/// Seeded permutation test of RSA(a, b): the images of `b` are relabelled.
pub fn permutation_test(
    a: &Rdm,
    b: &Rdm,
    method: Method,
    permutations: usize,
    seed: u64,
) -> Result<PermutationTest> {
    check_pair(a, b)?;
    if permutations == 0 {
        return Err(Error::Usage(
            "a permutation test needs at least 1 permutation".into(),
        ));
    }
    let n = a.n();
    let pa = Prepared::new("the first RDM", a, method)?;
    let pb = Prepared::new("the second RDM", b, method)?;
    let observed = pa.compare(&pb)?;
    let stats: Vec<f64> = match method {
        Method::Pearson | Method::Spearman => {
            // Full symmetric matrices of the standardised entries, so that a permutation is a
            // gather of rows and columns.
            let za = Rdm::from_upper(n, &pa.values)?;
            let zb = Rdm::from_upper(n, &pb.values)?;
            (0..permutations as u64)
                .into_par_iter()
                .map(|k| {
                    let p = SplitMix64::stream(seed, TAG_PERMUTATION, k).permutation(n);
                    let mut total = 0.0;
                    for i in 0..n {
                        let ra = &za.as_slice()[i * n..(i + 1) * n];
                        let rb = &zb.as_slice()[p[i] * n..(p[i] + 1) * n];
                        let mut s = 0.0;
                        for j in i + 1..n {
                            s += ra[j] * rb[p[j]];
                        }
                        total += s;
                    }
                    total
                })
                .collect()
        }
        Method::KendallTauA => {
            let x = &pa.values;
            let pairs = pair_indices(n);
            let bs = b.as_slice();
            (0..permutations as u64)
                .into_par_iter()
                .map(|k| {
                    let p = SplitMix64::stream(seed, TAG_PERMUTATION, k).permutation(n);
                    let y: Vec<f64> = pairs
                        .iter()
                        .map(|&(i, j)| bs[p[i as usize] * n + p[j as usize]])
                        .collect();
                    kendall_tau_a(x, &y)
                })
                .collect()
        }
    };
    let exceed = stats
        .iter()
        .filter(|&&s| s >= observed - TIE_TOLERANCE)
        .count();
    Ok(PermutationTest {
        observed,
        p_value: (1 + exceed) as f64 / (1 + permutations) as f64,
        exceed,
        permutations,
        seed,
    })
}

/// A bootstrap confidence interval over images.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootstrapCi {
    /// The RSA of the full data.
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// e.g. 0.95.
    pub level: f64,
    pub samples: usize,
    /// Samples whose statistic existed (a sample can leave an RDM constant, e.g. too few
    /// distinct images); the interval is over these.
    pub valid: usize,
    pub seed: u64,
}

/// The images drawn by bootstrap sample k: `SplitMix64::stream(seed, TAG_BOOTSTRAP, k)`,
/// `below(n)` n times.
pub fn bootstrap_sample(n: usize, seed: u64, k: u64) -> Vec<usize> {
    let mut g = SplitMix64::stream(seed, TAG_BOOTSTRAP, k);
    (0..n).map(|_| g.below(n)).collect()
}

/// How often each image is drawn by bootstrap sample k.
fn sample_counts(n: usize, seed: u64, k: u64) -> Vec<f64> {
    let mut counts = vec![0.0f64; n];
    for i in bootstrap_sample(n, seed, k) {
        counts[i] += 1.0;
    }
    counts
}

/// An upper triangle in sorted order, for weighted ranks: the entries' positions, the images
/// (i, j) of each (so a sample's weight count_i * count_j is read in order, not gathered), and
/// the runs of equal values.
struct RankPlan {
    order: Vec<u32>,
    pair: Vec<(u32, u32)>,
    /// Run boundaries in `order`: run r is order[runs[r]..runs[r + 1]].
    runs: Vec<u32>,
}

impl RankPlan {
    fn new(v: &[f64], pairs: &[(u32, u32)]) -> RankPlan {
        let order = sort_order(v);
        let pair = order.iter().map(|&o| pairs[o as usize]).collect();
        let mut runs = vec![0u32];
        for k in 1..order.len() {
            if v[order[k] as usize] != v[order[k - 1] as usize] {
                runs.push(k as u32);
            }
        }
        runs.push(order.len() as u32);
        RankPlan { order, pair, runs }
    }

    /// Visit every entry in sorted order with its weight (count_i * count_j) and its average
    /// rank (1-based) in the data where entry p appears weight_p times.
    fn for_each_rank(&self, counts: &[f64], mut f: impl FnMut(u32, f64, f64)) {
        let mut below = 0.0;
        for r in 0..self.runs.len() - 1 {
            let (s, e) = (self.runs[r] as usize, self.runs[r + 1] as usize);
            let weight: f64 = self.pair[s..e]
                .iter()
                .map(|&(i, j)| counts[i as usize] * counts[j as usize])
                .sum();
            let rank = below + (weight + 1.0) / 2.0;
            for k in s..e {
                let (i, j) = self.pair[k];
                f(self.order[k], counts[i as usize] * counts[j as usize], rank);
            }
            below += weight;
        }
    }
}

/// The Spearman correlation of a bootstrap sample from weighted ranks, in two ordered passes:
/// a's ranks are scattered to entry order once and gathered in b's order. The mean of average
/// ranks is exactly (W + 1) / 2 for W weighted entries, which centres both without a pass.
fn weighted_spearman(a: &RankPlan, b: &RankPlan, counts: &[f64], ra: &mut [f64]) -> Option<f64> {
    let total: f64 = {
        let (s, q) = counts
            .iter()
            .fold((0.0, 0.0), |(s, q), c| (s + c, q + c * c));
        (s * s - q) / 2.0
    };
    let mid = (total + 1.0) / 2.0;
    let mut saa = 0.0;
    a.for_each_rank(counts, |o, w, r| {
        ra[o as usize] = r - mid;
        saa += w * (r - mid) * (r - mid);
    });
    let (mut sbb, mut sab) = (0.0, 0.0);
    b.for_each_rank(counts, |o, w, r| {
        let d = r - mid;
        sbb += w * d * d;
        sab += w * d * ra[o as usize];
    });
    let scale = (saa * sbb).sqrt();
    if !(saa > 0.0 && sbb > 0.0) || scale == 0.0 {
        return None;
    }
    Some((sab / scale).clamp(-1.0, 1.0))
}

/// Weighted Pearson correlation; `None` when either side has no variance.
fn weighted_pearson(x: &[f64], y: &[f64], w: &[f64]) -> Option<f64> {
    let sw: f64 = w.iter().sum();
    let mx = x.iter().zip(w).map(|(a, w)| a * w).sum::<f64>() / sw;
    let my = y.iter().zip(w).map(|(a, w)| a * w).sum::<f64>() / sw;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for k in 0..x.len() {
        if w[k] == 0.0 {
            continue;
        }
        let (dx, dy) = (x[k] - mx, y[k] - my);
        sxy += w[k] * dx * dy;
        sxx += w[k] * dx * dx;
        syy += w[k] * dy * dy;
    }
    let scale = (sxx * syy).sqrt();
    // Relative test: the rounding of a constant's deviations must not count as variance.
    let tiny = 1e-24 * sw * sw * (mx * mx + 1.0) * (my * my + 1.0);
    if !(sxx * syy > tiny) || scale == 0.0 {
        return None;
    }
    Some((sxy / scale).clamp(-1.0, 1.0))
}

/// Percentile at fraction q of sorted values, linear interpolation (numpy's default).
fn percentile_sorted(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// Percentile bootstrap confidence interval of RSA(a, b) over images: each sample draws N images
/// with replacement (`bootstrap_sample`), keeps the entries of pairs of two different images,
/// and computes the RSA of the resampled entries.
pub fn bootstrap_ci(
    a: &Rdm,
    b: &Rdm,
    method: Method,
    samples: usize,
    level: f64,
    seed: u64,
) -> Result<BootstrapCi> {
    check_pair(a, b)?;
    if samples == 0 || !(level > 0.0 && level < 1.0) {
        return Err(Error::Usage(format!(
            "a bootstrap needs samples >= 1 and a level in (0, 1), got {samples} and {level}"
        )));
    }
    let n = a.n();
    let estimate = rsa(a, b, method)?;
    let (ua, ub) = (a.upper(), b.upper());
    let stats: Vec<Option<f64>> = match method {
        Method::Spearman => {
            let pairs = pair_indices(n);
            let (pa, pb) = (RankPlan::new(&ua, &pairs), RankPlan::new(&ub, &pairs));
            drop(pairs);
            (0..samples as u64)
                .into_par_iter()
                .map_init(
                    || vec![0.0; ua.len()],
                    |ra, k| weighted_spearman(&pa, &pb, &sample_counts(n, seed, k), ra),
                )
                .collect()
        }
        Method::Pearson => (0..samples as u64)
            .into_par_iter()
            .map_init(
                || vec![0.0; ua.len()],
                |w, k| {
                    let counts = sample_counts(n, seed, k);
                    let mut p = 0;
                    for i in 0..n {
                        for j in i + 1..n {
                            w[p] = counts[i] * counts[j];
                            p += 1;
                        }
                    }
                    weighted_pearson(&ua, &ub, w)
                },
            )
            .collect(),
        Method::KendallTauA => (0..samples as u64)
            .into_par_iter()
            .map(|k| {
                let s = bootstrap_sample(n, seed, k);
                let (mut x, mut y) = (Vec::new(), Vec::new());
                for p in 0..n {
                    for q in p + 1..n {
                        if s[p] != s[q] {
                            x.push(a.get(s[p], s[q]));
                            y.push(b.get(s[p], s[q]));
                        }
                    }
                }
                compare_vectors(&x, &y, Method::KendallTauA).ok()
            })
            .collect(),
    };
    let mut valid: Vec<f64> = stats.into_iter().flatten().collect();
    if valid.is_empty() {
        return Err(Error::Undefined {
            what: "the bootstrap confidence interval".into(),
            why: format!("none of {samples} resamples of {n} images left both RDMs non-constant"),
        });
    }
    valid.sort_by(f64::total_cmp);
    Ok(BootstrapCi {
        estimate,
        low: percentile_sorted(&valid, (1.0 - level) / 2.0),
        high: percentile_sorted(&valid, (1.0 + level) / 2.0),
        level,
        samples,
        valid: valid.len(),
        seed,
    })
}

/// The RSA matrix of a list of RDMs of the same images (e.g. every layer of one run): symmetric,
/// 1 on the diagonal, row-major [L, L]. `names` label the RDMs in error messages.
pub fn rsa_matrix(names: &[&str], rdms: &[&Rdm], method: Method) -> Result<Vec<f64>> {
    let prepared = prepare_all(names, rdms, method)?;
    let l = prepared.len();
    let cells: Vec<(usize, usize)> = (0..l)
        .flat_map(|i| (i + 1..l).map(move |j| (i, j)))
        .collect();
    let values: Vec<f64> = cells
        .iter()
        .map(|&(i, j)| prepared[i].compare(&prepared[j]))
        .collect::<Result<_>>()?;
    let mut out = vec![1.0; l * l];
    for (&(i, j), v) in cells.iter().zip(values) {
        out[i * l + j] = v;
        out[j * l + i] = v;
    }
    Ok(out)
}

/// RSA of every RDM of one list with every RDM of another (two models on the same images, or
/// layers against one external RDM): row-major [La, Lb].
pub fn rsa_cross(
    names_a: &[&str],
    a: &[&Rdm],
    names_b: &[&str],
    b: &[&Rdm],
    method: Method,
) -> Result<Vec<f64>> {
    let pa = prepare_all(names_a, a, method)?;
    let pb = prepare_all(names_b, b, method)?;
    if let (Some(x), Some(y)) = (a.first(), b.first())
        && x.n() != y.n()
    {
        return Err(Error::shape(
            "rsa",
            format!(
                "RDMs of {} images against RDMs of {} images: they must be of the same images in the same order",
                x.n(),
                y.n()
            ),
        ));
    }
    let mut out = Vec::with_capacity(pa.len() * pb.len());
    for x in &pa {
        for y in &pb {
            out.push(x.compare(y)?);
        }
    }
    Ok(out)
}

fn prepare_all(names: &[&str], rdms: &[&Rdm], method: Method) -> Result<Vec<Prepared>> {
    if names.len() != rdms.len() {
        return Err(Error::shape(
            "rsa",
            format!("{} names for {} RDMs", names.len(), rdms.len()),
        ));
    }
    if let Some(first) = rdms.first() {
        if let Some((k, r)) = rdms.iter().enumerate().find(|(_, r)| r.n() != first.n()) {
            return Err(Error::shape(
                "rsa",
                format!(
                    "RDM '{}' is of {} images, '{}' of {}",
                    names[k],
                    r.n(),
                    names[0],
                    first.n()
                ),
            ));
        }
        if first.n() < 3 {
            return Err(Error::Undefined {
                what: "RSA".into(),
                why: format!(
                    "{} image(s); a correlation needs 3 images or more",
                    first.n()
                ),
            });
        }
    }
    names
        .par_iter()
        .zip(rdms.par_iter())
        .map(|(name, r)| Prepared::new(&format!("the RDM of {name}"), r, method))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tau_a_brute(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len();
        let mut s = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                s += ((x[i] - x[j]).signum() * (x[i] != x[j]) as i32 as f64)
                    * ((y[i] - y[j]).signum() * (y[i] != y[j]) as i32 as f64);
            }
        }
        s / (n * (n - 1) / 2) as f64
    }

    #[test]
    fn kendall_matches_brute_force_with_ties() {
        let mut g = SplitMix64::new(3);
        for n in [2usize, 3, 7, 64, 301] {
            let x: Vec<f64> = (0..n).map(|_| g.below(5) as f64).collect();
            let y: Vec<f64> = (0..n).map(|_| g.below(7) as f64).collect();
            if x.iter().all(|&v| v == x[0]) || y.iter().all(|&v| v == y[0]) {
                continue;
            }
            let got = kendall_tau_a(&x, &y);
            let want = tau_a_brute(&x, &y);
            assert!((got - want).abs() < 1e-12, "n = {n}: {got} vs {want}");
        }
    }

    #[test]
    fn inversions_are_counted_and_sorted() {
        let mut v = vec![3.0, 1.0, 2.0, 2.0, 0.0];
        assert_eq!(count_inversions(&mut v), 7);
        assert_eq!(v, vec![0.0, 1.0, 2.0, 2.0, 3.0]);
    }
}
