//! What the statistics are, fixed before the pass: the activity predicate and the histograms'
//! bin edges (../shared/DESIGN.md "Statistic definitions"). The GPU kernels and the CPU
//! reference both take their definitions from here, so the two can only disagree through an
//! implementation error, which the tests then find.
//!
//! Bin edges are defined in f64 (`lo + i * (hi - lo) / bins`) and the rule that places a value is
//! stated as comparisons with those f64 edges. The GPU compares f32 values with f32 edges; the
//! f32 edge tables below are chosen so that those comparisons give the same answer for every
//! f32 value (for `x >= e`: the smallest f32 >= e; for `x > e`: the largest f32 <= e).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// When an entry counts as active (`--active`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Predicate {
    /// `gt:T`: x > T.
    Gt(f32),
    /// `absgt:T`: |x| > T.
    AbsGt(f32),
}

impl Default for Predicate {
    fn default() -> Self {
        Predicate::Gt(0.0)
    }
}

impl Predicate {
    /// The predicate on one value; NaN is never active.
    pub fn is_active(self, x: f32) -> bool {
        match self {
            Predicate::Gt(t) => x > t,
            Predicate::AbsGt(t) => x.abs() > t,
        }
    }

    pub fn threshold(self) -> f32 {
        match self {
            Predicate::Gt(t) | Predicate::AbsGt(t) => t,
        }
    }

    pub fn uses_abs(self) -> bool {
        matches!(self, Predicate::AbsGt(_))
    }
}

impl FromStr for Predicate {
    type Err = Error;

    fn from_str(s: &str) -> Result<Predicate> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "--active '{s}': {why}; expected 'gt:T' (x > T) or 'absgt:T' (|x| > T), e.g. 'gt:0'"
            ))
        };
        let (kind, value) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let t: f32 = value
            .trim()
            .parse()
            .map_err(|_| bad("the threshold is not a number"))?;
        if !t.is_finite() {
            return Err(bad("the threshold must be finite"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "gt" => Ok(Predicate::Gt(t)),
            "absgt" => Ok(Predicate::AbsGt(t)),
            _ => Err(bad("unknown predicate")),
        }
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Predicate::Gt(t) => write!(f, "gt:{t}"),
            Predicate::AbsGt(t) => write!(f, "absgt:{t}"),
        }
    }
}

impl serde::Serialize for Predicate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// (mantissa in [0.5, 1), exponent) of a finite nonzero f64, as C's frexp.
fn frexp(v: f64) -> (f64, i32) {
    if v == 0.0 || !v.is_finite() {
        return (v, 0);
    }
    let e = v.abs().log2().floor() as i32 + 1;
    let mut m = v / 2f64.powi(e);
    let mut e = e;
    // log2 may be off by one near powers of two.
    if m.abs() >= 1.0 {
        m /= 2.0;
        e += 1;
    } else if m.abs() < 0.5 {
        m *= 2.0;
        e -= 1;
    }
    (m, e)
}

/// The smallest f32 >= e: for f32 x, `x >= e` (in f64) iff `x >= ceil_f32(e)`.
pub fn ceil_f32(e: f64) -> f32 {
    let f = e as f32;
    if (f as f64) < e { f.next_up() } else { f }
}

/// The largest f32 <= e: for f32 x, `x > e` (in f64) iff `x > floor_f32(e)`.
pub fn floor_f32(e: f64) -> f32 {
    let f = e as f32;
    if (f as f64) > e { f.next_down() } else { f }
}

/// How far (in bins) an f32 bin estimate may be from the true position, with margin: the
/// estimate `(x - lo) * scale` rounds three times, each by at most 2^-24 of a magnitude below
/// (|lo| + |hi|) * scale bins, and the f32 `lo` differs from the f64 one by at most one ulp.
/// The GPU corrects an estimate by one bin against the edge table, so it must stay well below 1.
fn estimate_tolerance(lo: f64, hi: f64, bins: usize) -> f32 {
    let scale = bins as f64 / (hi - lo);
    (16.0 * f32::EPSILON as f64 * (lo.abs() + hi.abs()) * scale + 1e-6) as f32
}

/// The linear histogram: `bins` bins on [lo, hi), bin i = [e_i, e_{i+1}), plus underflow
/// (x < lo, -Inf included) and overflow (x >= hi, +Inf included). NaN is in no bin.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LinearHistSpec {
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
}

impl Default for LinearHistSpec {
    fn default() -> Self {
        LinearHistSpec {
            lo: -16.0,
            hi: 16.0,
            bins: 256,
        }
    }
}

/// Largest bin count either histogram accepts: each invocation of the statistics kernel keeps
/// all histograms in 1024 private words (linear and positive bins together at most 758, so
/// either one alone at most 757; src/stats/tap.rs checks the pair).
pub const MAX_BINS: usize = 757;

fn check_bins(what: &str, lo: f64, hi: f64, bins: usize) -> Result<()> {
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::Usage(format!(
            "{what}: range [{lo}, {hi}) must be finite with lo < hi"
        )));
    }
    if bins == 0 || bins > MAX_BINS {
        return Err(Error::Usage(format!(
            "{what}: {bins} bins; between 1 and {MAX_BINS} are supported"
        )));
    }
    if estimate_tolerance(lo, hi, bins) > 0.25 {
        return Err(Error::Usage(format!(
            "{what}: {bins} bins on [{lo}, {hi}) are narrower than f32 resolution allows"
        )));
    }
    Ok(())
}

impl LinearHistSpec {
    pub fn validate(&self) -> Result<()> {
        check_bins("--hist", self.lo, self.hi, self.bins)?;
        let e = self.gpu_edges();
        if e.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Usage(format!(
                "--hist: {} bins on [{}, {}) have edges that coincide in f32",
                self.bins, self.lo, self.hi
            )));
        }
        Ok(())
    }

    /// The f64 edges e_0 = lo, ..., e_bins = hi.
    pub fn edges(&self) -> Vec<f64> {
        (0..=self.bins)
            .map(|i| {
                if i == self.bins {
                    self.hi
                } else {
                    self.lo + i as f64 * (self.hi - self.lo) / self.bins as f64
                }
            })
            .collect()
    }

    /// Edges for `x >= e` tests in f32.
    pub fn gpu_edges(&self) -> Vec<f32> {
        self.edges().into_iter().map(ceil_f32).collect()
    }

    pub fn scale(&self) -> f32 {
        (self.bins as f64 / (self.hi - self.lo)) as f32
    }

    /// `(lo / width, width)` when the width is a power of two, lo a multiple of it and every
    /// edge `(lo / width + i) * width` exact in f32: then the GPU bins by `floor(x / width)`
    /// and rebuilds edges in f32 arithmetic, without a table.
    pub fn power_of_two_units(&self) -> Option<(i32, f32)> {
        let width = (self.hi - self.lo) / self.bins as f64;
        let (mantissa, _) = frexp(width);
        let units = self.lo / width;
        let exact = mantissa == 0.5
            && units.fract() == 0.0
            && units.abs() + self.bins as f64 <= (1u64 << 24) as f64
            && (width as f32) as f64 == width
            && width >= f32::MIN_POSITIVE as f64 * (1u64 << 24) as f64
            && (units + self.bins as f64) * width == self.hi;
        exact.then_some((units as i32, width as f32))
    }

    /// Where a value goes, by comparison with the f64 edges (the definition; the reference).
    pub fn place(&self, x: f32, edges: &[f64]) -> Option<Bin> {
        if x.is_nan() {
            return None;
        }
        let v = x as f64;
        Some(if v < edges[0] {
            Bin::Under
        } else if v >= edges[self.bins] {
            Bin::Over
        } else {
            // The last edge <= v.
            Bin::In(edges.partition_point(|&e| e <= v) - 1)
        })
    }
}

/// The positive-only histogram (the blog's view): `bins` bins on (0, hi], bin i =
/// (e_i, e_{i+1}], of the values x > 0 only, plus overflow (x > hi, +Inf included).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PosHistSpec {
    pub hi: f64,
    pub bins: usize,
}

/// The exact positive-bin product of `PosHistSpec::exact_scale`, as the kernel's pair
/// (`pos_scale_hi`, `pos_scale_lo`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PosScale {
    /// `bins / hi` = hi + lo, both powers of two (lo < hi, or 0), as the default 10 = 8 + 2: both
    /// products with x are exact, and the error of their rounded sum is exact by Fast2Sum.
    TwoPowers(f32, f32),
    /// Any other exact scale, as its Veltkamp halves (12 significant bits each) for Dekker's
    /// exact product.
    Halves(f32, f32),
}

impl PosScale {
    pub fn terms(self) -> (f32, f32) {
        match self {
            PosScale::TwoPowers(hi, lo) | PosScale::Halves(hi, lo) => (hi, lo),
        }
    }
}

impl Default for PosHistSpec {
    fn default() -> Self {
        PosHistSpec {
            hi: 10.0,
            bins: 100,
        }
    }
}

impl PosHistSpec {
    pub fn validate(&self) -> Result<()> {
        check_bins("--hist-pos", 0.0, self.hi, self.bins)?;
        let e = self.gpu_edges();
        if e.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Usage(format!(
                "--hist-pos: {} bins on (0, {}] have edges that coincide in f32",
                self.bins, self.hi
            )));
        }
        Ok(())
    }

    pub fn edges(&self) -> Vec<f64> {
        (0..=self.bins)
            .map(|i| {
                if i == self.bins {
                    self.hi
                } else {
                    i as f64 * self.hi / self.bins as f64
                }
            })
            .collect()
    }

    /// Edges for `x > e` tests in f32.
    pub fn gpu_edges(&self) -> Vec<f32> {
        self.edges().into_iter().map(floor_f32).collect()
    }

    pub fn scale(&self) -> f32 {
        (self.bins as f64 / self.hi) as f32
    }

    /// How the GPU places `x` exactly without the edge table, when `bins / hi` is exact in f32
    /// and every edge `i * hi / bins` is the f64 value `i / scale` in exact arithmetic: then
    /// x > e_i iff x * scale > i, which the GPU decides from the rounded product and its exact
    /// error. `None`: the edge table.
    pub fn exact_scale(&self) -> Option<PosScale> {
        let scale = self.bins as f64 / self.hi;
        let exact = (scale as f32) as f64 == scale
            && scale * self.hi == self.bins as f64
            && self.bins as f64 / scale == self.hi
            && (1e-6..=1e6).contains(&scale);
        exact.then(|| {
            let s = scale as f32;
            // The largest power of two at most s, and the rest.
            let top = f32::from_bits(s.to_bits() & 0xff80_0000);
            let rest = s - top;
            if rest == 0.0 || rest == f32::from_bits(rest.to_bits() & 0xff80_0000) {
                PosScale::TwoPowers(top, rest)
            } else {
                let c = 4097.0 * s;
                let hi = c - (c - s);
                PosScale::Halves(hi, s - hi)
            }
        })
    }

    /// Where a value goes; `None` for x <= 0 and NaN (not counted).
    pub fn place(&self, x: f32, edges: &[f64]) -> Option<Bin> {
        let v = x as f64;
        if x.is_nan() || v <= 0.0 {
            return None;
        }
        Some(if v > edges[self.bins] {
            Bin::Over
        } else {
            // The first edge >= v closes the bin.
            Bin::In(edges.partition_point(|&e| e < v) - 1)
        })
    }
}

/// The log2 histogram of |x|: `LOG_PER_OCTAVE` bins per octave over
/// [2^LOG_MIN_EXP, 2^LOG_MAX_EXP), bin j = [2^(LOG_MIN_EXP + j/4), 2^(LOG_MIN_EXP + (j+1)/4)),
/// kept separately for x > 0 and x < 0, with underflow (0 < |x| < 2^-24) and overflow
/// (|x| >= 2^8, Inf included); exact zeros are counted apart (`zero_entries`), NaN nowhere.
pub const LOG_MIN_EXP: i32 = -24;
pub const LOG_MAX_EXP: i32 = 8;
pub const LOG_PER_OCTAVE: usize = 4;
pub const LOG_BINS: usize = (LOG_MAX_EXP - LOG_MIN_EXP) as usize * LOG_PER_OCTAVE;

/// The f64 edges of the log histogram, 2^(LOG_MIN_EXP + j / LOG_PER_OCTAVE), j = 0..=LOG_BINS.
pub fn log_edges() -> Vec<f64> {
    (0..=LOG_BINS)
        .map(|j| {
            let octave = LOG_MIN_EXP + (j / LOG_PER_OCTAVE) as i32;
            let frac = (j % LOG_PER_OCTAVE) as f64 / LOG_PER_OCTAVE as f64;
            2f64.powi(octave) * frac.exp2()
        })
        .collect()
}

/// For the GPU: |x| >= 2^(o + k/4) iff the f32 mantissa field of x (its 23 low bits, x in
/// octave o) is >= ceil((2^(k/4) - 1) * 2^23), k = 1, 2, 3: exact, as scaling by 2^o is.
pub fn log_mantissa_thresholds() -> [u32; 3] {
    let mut t = [0u32; 3];
    for (k, slot) in t.iter_mut().enumerate() {
        let v = (((k + 1) as f64 / LOG_PER_OCTAVE as f64).exp2() - 1.0) * (1u64 << 23) as f64;
        // 2^(k/4) is irrational, so v is far (relative to f64 error) from an integer.
        debug_assert!((v - v.round()).abs() > 1e-6);
        *slot = v.ceil() as u32;
    }
    t
}

/// Where |x| of a nonzero, non-NaN x goes in the log histogram (the definition; the reference).
pub fn log_place(x: f32, edges: &[f64]) -> Option<Bin> {
    let v = (x as f64).abs();
    if x.is_nan() || v == 0.0 {
        return None;
    }
    Some(if v < edges[0] {
        Bin::Under
    } else if v >= edges[LOG_BINS] {
        Bin::Over
    } else {
        Bin::In(edges.partition_point(|&e| e <= v) - 1)
    })
}

/// A value's place in a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    Under,
    In(usize),
    Over,
}

/// Everything a pass computes per tap, fixed up front.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StatsConfig {
    pub predicate: Predicate,
    pub hist: LinearHistSpec,
    pub hist_pos: PosHistSpec,
    /// Number of classes K when images carry labels (0 = unlabelled).
    pub classes: usize,
    /// Also write the per-token Hoyer values of each batch ([B, P] f32) for read-back.
    pub hoyer_tokens: bool,
}

impl StatsConfig {
    pub fn validate(&self) -> Result<()> {
        self.hist.validate()?;
        self.hist_pos.validate()?;
        if self.classes > u32::MAX as usize / 4 {
            return Err(Error::Usage(format!(
                "{} classes are too many",
                self.classes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_parses() {
        assert_eq!("gt:0".parse::<Predicate>().unwrap(), Predicate::Gt(0.0));
        assert_eq!(
            "absgt:1e-3".parse::<Predicate>().unwrap(),
            Predicate::AbsGt(1e-3)
        );
        for bad in ["gt", "lt:0", "gt:x", "gt:inf", "gt:nan"] {
            assert!(bad.parse::<Predicate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn f32_edges_reproduce_f64_comparisons() {
        for e in [0.1f64, -0.3, 1.0 / 3.0, 16.0, -16.0, 1e-30, 0.0] {
            let c = ceil_f32(e);
            let f = floor_f32(e);
            for x in [c.next_down(), c, c.next_up(), f.next_down(), f, f.next_up()] {
                assert_eq!(x as f64 >= e, x >= c, "x >= {e} at {x}");
                assert_eq!(x as f64 > e, x > f, "x > {e} at {x}");
            }
        }
    }

    #[test]
    fn fast_paths_are_recognised() {
        assert_eq!(
            LinearHistSpec::default().power_of_two_units(),
            Some((-128, 0.125))
        );
        let odd = LinearHistSpec {
            lo: -3.0,
            hi: 7.0,
            bins: 37,
        };
        assert_eq!(odd.power_of_two_units(), None);
        let offset = LinearHistSpec {
            lo: 0.1,
            hi: 0.6,
            bins: 4,
        };
        assert_eq!(offset.power_of_two_units(), None);
        let two = |hi, lo| Some(PosScale::TwoPowers(hi, lo));
        assert_eq!(PosHistSpec::default().exact_scale(), two(8.0, 2.0));
        assert_eq!(
            PosHistSpec { hi: 4.0, bins: 10 }.exact_scale(),
            two(2.0, 0.5)
        );
        assert_eq!(
            PosHistSpec { hi: 2.0, bins: 16 }.exact_scale(),
            two(8.0, 0.0)
        );
        assert_eq!(PosHistSpec { hi: 2.5, bins: 13 }.exact_scale(), None);
        // 100 = 64 + 32 + 4: three powers, so Dekker's product (100 has 7 significant bits,
        // within one Veltkamp half).
        assert_eq!(
            PosHistSpec { hi: 1.0, bins: 100 }.exact_scale(),
            Some(PosScale::Halves(100.0, 0.0))
        );
    }

    #[test]
    fn log_thresholds_match_edges() {
        let edges = log_edges();
        let t = log_mantissa_thresholds();
        for (k, &m) in t.iter().enumerate() {
            // The f32 with mantissa m in octave 0 (exponent -24) is the first at or above the
            // edge; the one below is under it.
            let bits = ((127 - 24) << 23) | m;
            let at = f32::from_bits(bits);
            let below = f32::from_bits(bits - 1);
            assert!(at as f64 >= edges[k + 1] && (below as f64) < edges[k + 1]);
        }
    }
}
