//! Ridge regression with exact leave-one-out R^2: how much of the full pooled features the
//! dropped channels alone explain (the pruning analysis of DESIGN.md, after Truong et al. 2023).
//!
//! Model: every target column is regressed on the predictors with an unpenalised intercept and
//! a ridge penalty lambda |beta|^2. For such a linear smoother the leave-one-out residual is
//! exact in closed form, e_loo_i = e_i / (1 - H_ii), with H the hat matrix of the full fit
//! (including the intercept: H = 11^T/N + Xc (Xc^T Xc + lambda I)^-1 Xc^T, Xc the centred
//! predictors), so no refit is needed. The in-sample R^2 would be meaningless here: with fewer
//! images than channels any channels fit everything.
//!
//! R^2 = 1 - sum_i sum_c e_loo_ic^2 / sum_i sum_c (Y_ic - mean_c)^2 over all target columns.
//! It can be slightly negative: even the intercept-only model predicts a held-out image worse
//! than the mean of all images does.
//!
//! Lambda: relative to the predictors' scale, lambda = alpha * tr(Xc^T Xc) / p (alpha times the
//! mean eigenvalue of Xc^T Xc), so the same alpha means the same shrinkage for channels of any
//! magnitude. By default alpha is the value of `DEFAULT_ALPHAS` with the best leave-one-out
//! R^2 (the first on ties), as RidgeCV does; the R^2 reported is that best one, which is
//! optimistic by the selection among 7 values only. A fixed alpha is available.
//!
//! Form: the primal p x p system when N > p, the dual (kernel) N x N one otherwise; both are
//! solved by Cholesky in f64.

// `!(x > y)` on purpose throughout: a NaN must fail the test, not pass it.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rdm::dot_f64;

/// The alphas searched by default.
pub const DEFAULT_ALPHAS: [f64; 7] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0];

/// How the ridge penalty is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Penalty {
    /// lambda = alpha * tr(Xc^T Xc) / p.
    Relative(f64),
    /// The alpha of these with the best leave-one-out R^2 (first on ties).
    LooSearch(Vec<f64>),
}

impl Default for Penalty {
    fn default() -> Self {
        Penalty::LooSearch(DEFAULT_ALPHAS.to_vec())
    }
}

/// The leave-one-out fit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RidgeLoo {
    /// Variance explained out of sample.
    pub r2: f64,
    pub alpha: f64,
    pub lambda: f64,
    pub images: usize,
    pub predictors: usize,
    pub targets: usize,
    /// "primal" or "dual".
    pub form: &'static str,
}

/// Row-major matrix.
#[derive(Clone)]
struct Mat {
    rows: usize,
    cols: usize,
    v: Vec<f64>,
}

impl Mat {
    fn row(&self, i: usize) -> &[f64] {
        &self.v[i * self.cols..(i + 1) * self.cols]
    }

    fn transpose(&self) -> Mat {
        let mut v = vec![0.0; self.v.len()];
        for i in 0..self.rows {
            for j in 0..self.cols {
                v[j * self.rows + i] = self.v[i * self.cols + j];
            }
        }
        Mat {
            rows: self.cols,
            cols: self.rows,
            v,
        }
    }

    /// self * other^T from rows: out[i][j] = row_i(self) . row_j(other).
    fn mul_bt(&self, other: &Mat) -> Mat {
        let mut v = vec![0.0; self.rows * other.rows];
        v.par_chunks_mut(other.rows.max(1))
            .enumerate()
            .for_each(|(i, out)| {
                let a = self.row(i);
                for (j, o) in out.iter_mut().enumerate() {
                    *o = dot_f64(a, other.row(j));
                }
            });
        Mat {
            rows: self.rows,
            cols: other.rows,
            v,
        }
    }

    /// self * other (other row-major): out row i = sum_k self[i, k] * other row k.
    fn mul(&self, other: &Mat) -> Mat {
        let mut v = vec![0.0; self.rows * other.cols];
        v.par_chunks_mut(other.cols.max(1))
            .enumerate()
            .for_each(|(i, out)| {
                for (k, &a) in self.row(i).iter().enumerate() {
                    if a != 0.0 {
                        for (o, &b) in out.iter_mut().zip(other.row(k)) {
                            *o += a * b;
                        }
                    }
                }
            });
        Mat {
            rows: self.rows,
            cols: other.cols,
            v,
        }
    }
}

/// Lower Cholesky factor of a symmetric positive definite matrix (in place, lower triangle).
fn cholesky(mut a: Mat) -> Result<Mat> {
    let n = a.rows;
    for j in 0..n {
        let row = &a.v[j * n..j * n + j];
        let d = a.v[j * n + j] - dot_f64(row, row);
        if !(d > 0.0) {
            return Err(Error::Undefined {
                what: "the ridge fit".into(),
                why: format!("the penalised system is not positive definite at row {j} ({d})"),
            });
        }
        let d = d.sqrt();
        a.v[j * n + j] = d;
        a.v[j * n + j + 1..(j + 1) * n].fill(0.0);
        let rj: Vec<f64> = a.v[j * n..j * n + j].to_vec();
        // Rows below j: L[i][j] = (A[i][j] - L_i[..j] . L_j[..j]) / L[j][j].
        a.v[(j + 1) * n..].par_chunks_mut(n).for_each(|row_i| {
            row_i[j] = (row_i[j] - dot_f64(&row_i[..j], &rj)) / d;
        });
    }
    Ok(a)
}

/// Solve L X = B in place (B: [n, c] row-major), L lower triangular.
fn forward_solve(l: &Mat, b: &mut Mat) {
    let (n, c) = (l.rows, b.cols);
    for i in 0..n {
        let (done, rest) = b.v.split_at_mut(i * c);
        let bi = &mut rest[..c];
        for (k, &lik) in l.row(i)[..i].iter().enumerate() {
            if lik != 0.0 {
                let bk = &done[k * c..(k + 1) * c];
                for (o, &v) in bi.iter_mut().zip(bk) {
                    *o -= lik * v;
                }
            }
        }
        let d = l.v[i * n + i];
        for o in bi.iter_mut() {
            *o /= d;
        }
    }
}

/// Solve L^T X = B in place.
fn backward_solve(l: &Mat, b: &mut Mat) {
    let (n, c) = (l.rows, b.cols);
    for i in (0..n).rev() {
        let (head, rest) = b.v.split_at_mut((i + 1) * c);
        let bi = &mut head[i * c..];
        for k in i + 1..n {
            let lki = l.v[k * n + i];
            if lki != 0.0 {
                let bk = &rest[(k - i - 1) * c..(k - i) * c];
                for (o, &v) in bi.iter_mut().zip(bk) {
                    *o -= lki * v;
                }
            }
        }
        let d = l.v[i * n + i];
        for o in bi.iter_mut() {
            *o /= d;
        }
    }
}

/// Columns minus their means.
fn centred(x: &[f64], rows: usize, cols: usize) -> Mat {
    let mut means = vec![0.0; cols];
    for i in 0..rows {
        for (m, &v) in means.iter_mut().zip(&x[i * cols..(i + 1) * cols]) {
            *m += v;
        }
    }
    for m in &mut means {
        *m /= rows as f64;
    }
    let mut v = x.to_vec();
    for i in 0..rows {
        for (o, m) in v[i * cols..(i + 1) * cols].iter_mut().zip(&means) {
            *o -= m;
        }
    }
    Mat { rows, cols, v }
}

/// Leave-one-out R^2 of ridge regressions of every column of `y` ([n, targets]) on `x`
/// ([n, predictors]), both row-major f64.
pub fn ridge_loo_r2(
    x: &[f64],
    predictors: usize,
    y: &[f64],
    targets: usize,
    n: usize,
    penalty: &Penalty,
) -> Result<RidgeLoo> {
    if x.len() != n * predictors || y.len() != n * targets {
        return Err(Error::shape(
            "ridge",
            format!(
                "predictors of {} values for [{n}, {predictors}], targets of {} for [{n}, {targets}]",
                x.len(),
                y.len()
            ),
        ));
    }
    if n < 3 {
        return Err(Error::Undefined {
            what: "the leave-one-out R^2".into(),
            why: format!("{n} image(s); leaving one out needs 3 or more"),
        });
    }
    if targets == 0 {
        return Err(Error::Undefined {
            what: "the leave-one-out R^2".into(),
            why: "there are no target columns".into(),
        });
    }
    if let Some(k) = x.iter().chain(y).position(|v| !v.is_finite()) {
        return Err(Error::Undefined {
            what: "the leave-one-out R^2".into(),
            why: format!("value {k} of the inputs is not finite"),
        });
    }
    let yc = centred(y, n, targets);
    let tss: f64 = yc.v.iter().map(|v| v * v).sum();
    if !(tss > 0.0) {
        return Err(Error::Undefined {
            what: "the variance explained".into(),
            why: "the target features are the same for every image (no variance)".into(),
        });
    }
    let alphas = match penalty {
        Penalty::Relative(a) => vec![*a],
        Penalty::LooSearch(a) => a.clone(),
    };
    if alphas.is_empty() || alphas.iter().any(|a| !(*a > 0.0 && a.is_finite())) {
        return Err(Error::Usage(format!(
            "ridge alphas must be positive and finite, got {alphas:?}"
        )));
    }
    let form = if n > predictors { "primal" } else { "dual" };
    if predictors == 0 {
        // Nothing dropped explains nothing.
        return Ok(RidgeLoo {
            r2: 0.0,
            alpha: alphas[0],
            lambda: 0.0,
            images: n,
            predictors,
            targets,
            form,
        });
    }
    let xc = centred(x, n, predictors);
    let trace: f64 = xc.v.iter().map(|v| v * v).sum();
    // Constant predictors carry nothing; any positive lambda then gives the intercept-only fit.
    let base = if trace > 0.0 {
        trace / predictors as f64
    } else {
        1.0
    };

    let mut best: Option<RidgeLoo> = None;
    if n > predictors {
        let xt = xc.transpose();
        let xtx = xt.mul_bt(&xt);
        let yt = yc.transpose();
        let xty = xt.mul_bt(&yt);
        for &alpha in &alphas {
            let lambda = alpha * base;
            let mut a = Mat {
                rows: predictors,
                cols: predictors,
                v: xtx.v.clone(),
            };
            for i in 0..predictors {
                a.v[i * predictors + i] += lambda;
            }
            let l = cholesky(a)?;
            let mut w = Mat {
                rows: predictors,
                cols: targets,
                v: xty.v.clone(),
            };
            forward_solve(&l, &mut w);
            backward_solve(&l, &mut w);
            let mut z = xt.clone();
            forward_solve(&l, &mut z);
            let mut h = vec![1.0 / n as f64; n];
            for k in 0..predictors {
                for (hi, &v) in h.iter_mut().zip(z.row(k)) {
                    *hi += v * v;
                }
            }
            let fitted = xc.mul(&w);
            let sse = loo_sse(&yc, &fitted.v, &h, |r, f| r - f)?;
            keep_best(
                &mut best, sse, tss, alpha, lambda, n, predictors, targets, form,
            );
        }
    } else {
        let k = xc.mul_bt(&xc);
        for &alpha in &alphas {
            let lambda = alpha * base;
            let mut m = Mat {
                rows: n,
                cols: n,
                v: k.v.clone(),
            };
            for i in 0..n {
                m.v[i * n + i] += lambda;
            }
            let l = cholesky(m)?;
            // Residuals of the centred fit: Yc - K (K + lambda I)^-1 Yc = lambda (K + lambda I)^-1 Yc.
            let mut sol = Mat {
                rows: n,
                cols: targets,
                v: yc.v.clone(),
            };
            forward_solve(&l, &mut sol);
            backward_solve(&l, &mut sol);
            // diag((K + lambda I)^-1)_i = |L^-1 e_i|^2 = squared norm of column i of L^-1.
            let mut linv = Mat {
                rows: n,
                cols: n,
                v: vec![0.0; n * n],
            };
            for i in 0..n {
                linv.v[i * n + i] = 1.0;
            }
            forward_solve(&l, &mut linv);
            let mut diag = vec![0.0; n];
            for r in 0..n {
                for (d, &v) in diag.iter_mut().zip(linv.row(r)) {
                    *d += v * v;
                }
            }
            // H = 11^T/n + I - lambda (K + lambda I)^-1.
            let h: Vec<f64> = diag
                .iter()
                .map(|d| 1.0 / n as f64 + 1.0 - lambda * d)
                .collect();
            let sse = loo_sse(&sol, &yc.v, &h, |s, _| lambda * s)?;
            keep_best(
                &mut best, sse, tss, alpha, lambda, n, predictors, targets, form,
            );
        }
    }
    Ok(best.expect("at least one alpha"))
}

/// Sum over images and targets of (residual / (1 - H_ii))^2, with residual = f(a, b) elementwise.
/// The intercept's part of the residual: the centred fit leaves Yc - fitted, the mean is exact.
fn loo_sse(a: &Mat, b: &[f64], h: &[f64], f: impl Fn(f64, f64) -> f64) -> Result<f64> {
    let c = a.cols;
    let mut sse = 0.0;
    for i in 0..a.rows {
        let denom = 1.0 - h[i];
        if !(denom > 1e-12) {
            return Err(Error::Undefined {
                what: "the leave-one-out residual".into(),
                why: format!("image {i} has leverage {} (the fit interpolates it)", h[i]),
            });
        }
        let row: f64 = a
            .row(i)
            .iter()
            .zip(&b[i * c..(i + 1) * c])
            .map(|(&x, &y)| {
                let e = f(x, y);
                e * e
            })
            .sum();
        sse += row / (denom * denom);
    }
    Ok(sse)
}

#[allow(clippy::too_many_arguments)]
fn keep_best(
    best: &mut Option<RidgeLoo>,
    sse: f64,
    tss: f64,
    alpha: f64,
    lambda: f64,
    images: usize,
    predictors: usize,
    targets: usize,
    form: &'static str,
) {
    let r2 = 1.0 - sse / tss;
    if best.as_ref().is_none_or(|b| r2 > b.r2) {
        *best = Some(RidgeLoo {
            r2,
            alpha,
            lambda,
            images,
            predictors,
            targets,
            form,
        });
    }
}

/// The variance of all `channels` columns of the pooled features ([images, channels], f32)
/// explained out of sample by the columns `dropped` alone.
pub fn variance_explained_by_columns(
    features: &[f32],
    images: usize,
    channels: usize,
    dropped: &[usize],
    penalty: &Penalty,
) -> Result<RidgeLoo> {
    if features.len() != images * channels {
        return Err(Error::shape(
            "ridge",
            format!(
                "{} pooled values do not form [{images}, {channels}]",
                features.len()
            ),
        ));
    }
    if let Some(&c) = dropped.iter().find(|&&c| c >= channels) {
        return Err(Error::shape(
            "ridge",
            format!("dropped channel {c} of a tap with {channels} channels"),
        ));
    }
    let y: Vec<f64> = features.iter().map(|&v| v as f64).collect();
    let p = dropped.len();
    let mut x = vec![0.0; images * p];
    for i in 0..images {
        for (k, &c) in dropped.iter().enumerate() {
            x[i * p + k] = y[i * channels + c];
        }
    }
    ridge_loo_r2(&x, p, &y, channels, images, penalty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SplitMix64;

    /// Leave-one-out by refitting, the definition itself.
    fn brute(x: &[f64], p: usize, y: &[f64], c: usize, n: usize, lambda: f64) -> f64 {
        let mut sse = 0.0;
        for out in 0..n {
            let keep: Vec<usize> = (0..n).filter(|&i| i != out).collect();
            let m = keep.len();
            let xs: Vec<f64> = keep
                .iter()
                .flat_map(|&i| x[i * p..(i + 1) * p].to_vec())
                .collect();
            let ys: Vec<f64> = keep
                .iter()
                .flat_map(|&i| y[i * c..(i + 1) * c].to_vec())
                .collect();
            let mx: Vec<f64> = (0..p)
                .map(|k| (0..m).map(|i| xs[i * p + k]).sum::<f64>() / m as f64)
                .collect();
            let my: Vec<f64> = (0..c)
                .map(|k| (0..m).map(|i| ys[i * c + k]).sum::<f64>() / m as f64)
                .collect();
            let xc = Mat {
                rows: m,
                cols: p,
                v: (0..m * p).map(|e| xs[e] - mx[e % p]).collect(),
            };
            let yc = Mat {
                rows: m,
                cols: c,
                v: (0..m * c).map(|e| ys[e] - my[e % c]).collect(),
            };
            let xt = xc.transpose();
            let mut a = xt.mul_bt(&xt);
            for i in 0..p {
                a.v[i * p + i] += lambda;
            }
            let l = cholesky(a).unwrap();
            let mut w = xt.mul_bt(&yc.transpose());
            forward_solve(&l, &mut w);
            backward_solve(&l, &mut w);
            for t in 0..c {
                let pred = my[t]
                    + (0..p)
                        .map(|k| (x[out * p + k] - mx[k]) * w.v[k * c + t])
                        .sum::<f64>();
                sse += (y[out * c + t] - pred).powi(2);
            }
        }
        let yc = centred(y, n, c);
        1.0 - sse / yc.v.iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn closed_form_matches_refits_in_both_forms() {
        let mut g = SplitMix64::new(11);
        let mut u = || (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        for (n, p, c) in [(12usize, 4usize, 6usize), (7, 9, 5)] {
            let x: Vec<f64> = (0..n * p).map(|_| u()).collect();
            let y: Vec<f64> = (0..n * c)
                .map(|e| x[(e / c) * p + (e % c) % p] + 0.3 * u())
                .collect();
            for alpha in [0.01, 1.0] {
                let got = ridge_loo_r2(&x, p, &y, c, n, &Penalty::Relative(alpha)).unwrap();
                let want = brute(&x, p, &y, c, n, got.lambda);
                assert!(
                    (got.r2 - want).abs() < 1e-9,
                    "n {n} p {p}: {} vs {want}",
                    got.r2
                );
            }
        }
    }
}
