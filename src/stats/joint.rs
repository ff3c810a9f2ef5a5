//! The joint histogram word: how `stats_tap` counts an entry into all three histograms (linear,
//! positive, log) with one private-array increment instead of three.
//!
//! On llvmpipe a private-array increment at a per-lane index is a gather and a scatter, the
//! costliest thing the statistics kernel does per entry. The three bins of a value are each
//! nondecreasing functions of x on x > 0 (linear word, positive word, log word of |x|), so their
//! sum is too, and equal sums mean equal triples: the sum alone names the triple. On x < 0 the
//! linear word rises with x while the log word of |x| falls, so `linear + (LOG_WORDS - 1 - log)`
//! is nondecreasing there. The kernel counts each nonzero, non-NaN entry at
//!   x > 0: `(linear - lin_pos_min) + positive + log`,
//!   x < 0: `neg_base + linear + (LOG_WORDS - 1 - log)`,
//! and after the pass `JointBins::split` hands each joint word's count to the bins it stands for,
//! found here by walking every f32 value of each sign in order with the definitions of
//! `spec.rs` (the walk visits each distinct sum once, by bisection over the f32 bit patterns).
//! Zeros, NaN and the infinities are counted apart (the kernel's special words); the host puts
//! each infinity's count back at its joint word (`infinity_words`).
//!
//! Size: the linear words of x > 0 start at `lin_pos_min` (the word of the smallest positive
//! f32) and those of x < 0 end at `lin_neg_max`, so the two regions hold
//! `hist_bins + pos_bins + 2 * LOG_WORDS + 1` words at most, two more than the three separate
//! histograms.

use crate::stats::spec::{Bin, LOG_BINS, LinearHistSpec, PosHistSpec, log_edges, log_place};

/// Words of the log histogram of one sign: underflow, LOG_BINS bins, overflow.
pub const LOG_WORDS: usize = LOG_BINS + 2;

/// The three histograms' words that one joint word stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    linear: usize,
    /// The positive histogram's word (x > 0 only).
    positive: Option<usize>,
    log: usize,
    negative: bool,
}

/// The histograms of one pass, split out of the joint words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitHistograms {
    pub hist: Vec<u64>,
    pub hist_pos: Vec<u64>,
    pub loghist_pos: Vec<u64>,
    pub loghist_neg: Vec<u64>,
}

/// The joint word layout for one pair of histogram specs.
#[derive(Debug, Clone)]
pub struct JointBins {
    /// Linear word of the smallest positive f32 (subtracted from x > 0's linear words).
    pub lin_pos_min: usize,
    /// Linear word of the negative f32 nearest zero (the largest linear word of x < 0).
    pub lin_neg_max: usize,
    /// First word of the x < 0 region.
    pub neg_base: usize,
    hist_bins: usize,
    pos_bins: usize,
    /// The joint words of +Inf and -Inf.
    inf_words: (usize, usize),
    owners: Vec<Owner>,
}

/// The linear histogram's word: 0 underflow, 1 + bin, bins + 1 overflow.
fn linear_word(spec: &LinearHistSpec, edges: &[f64], x: f32) -> usize {
    match spec.place(x, edges) {
        Some(Bin::Under) => 0,
        Some(Bin::In(i)) => 1 + i,
        Some(Bin::Over) => spec.bins + 1,
        None => unreachable!("joint words are built for non-NaN values"),
    }
}

/// The positive histogram's word of x > 0: the bin, or bins for the overflow.
fn positive_word(spec: &PosHistSpec, edges: &[f64], x: f32) -> usize {
    match spec.place(x, edges) {
        Some(Bin::In(i)) => i,
        Some(Bin::Over) => spec.bins,
        _ => unreachable!("the positive histogram is walked over x > 0"),
    }
}

/// The log histogram's word of |x| (x nonzero, not NaN): 0 underflow, 1 + bin, LOG_BINS + 1.
fn log_word(edges: &[f64], x: f32) -> usize {
    match log_place(x, edges) {
        Some(Bin::Under) => 0,
        Some(Bin::In(j)) => 1 + j,
        Some(Bin::Over) => LOG_BINS + 1,
        None => unreachable!("joint words are built for nonzero, non-NaN values"),
    }
}

/// Calls `visit(value, i)` for each distinct value of `f`, nondecreasing on `0..n`, at the first
/// index that takes it, in order (bisection: about 31 evaluations per distinct value).
fn walk_distinct(n: u32, f: impl Fn(u32) -> usize, mut visit: impl FnMut(usize, u32)) {
    let last = f(n - 1);
    let mut i = 0;
    loop {
        let v = f(i);
        visit(v, i);
        if v == last {
            return;
        }
        // f(lo) == v < f(hi).
        let (mut lo, mut hi) = (i, n - 1);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if f(mid) > v {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        i = hi;
    }
}

/// f32 bit patterns of +Inf: positive values are the patterns 1..=INF in increasing order.
const INF_BITS: u32 = 0x7f80_0000;

impl JointBins {
    pub fn new(hist: &LinearHistSpec, hist_pos: &PosHistSpec) -> JointBins {
        let lin_edges = hist.edges();
        let pos_edges = hist_pos.edges();
        let log_e = log_edges();
        let tiny = f32::from_bits(1);
        let lin_pos_min = linear_word(hist, &lin_edges, tiny);
        let lin_neg_max = linear_word(hist, &lin_edges, -tiny);
        let up = |x: f32| {
            linear_word(hist, &lin_edges, x) - lin_pos_min
                + positive_word(hist_pos, &pos_edges, x)
                + log_word(&log_e, x)
        };
        let down =
            |x: f32| linear_word(hist, &lin_edges, x) + (LOG_WORDS - 1 - log_word(&log_e, x));
        let pos_len = (hist.bins + 1 - lin_pos_min) + hist_pos.bins + LOG_WORDS;
        let neg_base = pos_len;
        let words = neg_base + lin_neg_max + LOG_WORDS;
        let inf_words = (up(f32::INFINITY), neg_base + down(f32::NEG_INFINITY));
        let mut owners: Vec<Option<Owner>> = vec![None; words];
        // x > 0 in increasing order: bit patterns 1..=INF.
        walk_distinct(
            INF_BITS,
            |i| up(f32::from_bits(1 + i)),
            |w, i| {
                let x = f32::from_bits(1 + i);
                owners[w] = Some(Owner {
                    linear: linear_word(hist, &lin_edges, x),
                    positive: Some(positive_word(hist_pos, &pos_edges, x)),
                    log: log_word(&log_e, x),
                    negative: false,
                });
            },
        );
        // x < 0 in increasing order: -Inf up to the negative value nearest zero.
        walk_distinct(
            INF_BITS,
            |i| down(-f32::from_bits(INF_BITS - i)),
            |w, i| {
                let x = -f32::from_bits(INF_BITS - i);
                owners[neg_base + w] = Some(Owner {
                    linear: linear_word(hist, &lin_edges, x),
                    positive: None,
                    log: log_word(&log_e, x),
                    negative: true,
                });
            },
        );
        // Words no value reaches are never written by the kernel; were one written, its count
        // goes with the word below it (the first word of each region is always reached).
        let mut last = owners[0].expect("the smallest positive value has a joint word");
        let owners = owners
            .into_iter()
            .map(|o| {
                last = o.unwrap_or(last);
                last
            })
            .collect();
        JointBins {
            lin_pos_min,
            lin_neg_max,
            neg_base,
            hist_bins: hist.bins,
            pos_bins: hist_pos.bins,
            inf_words,
            owners,
        }
    }

    /// The joint words of +Inf and -Inf, where the host adds the infinities the kernel counted
    /// apart.
    pub fn infinity_words(&self) -> (usize, usize) {
        self.inf_words
    }

    /// Joint words in all (both regions); the kernel's special words and discard word come
    /// after them.
    pub fn words(&self) -> usize {
        self.owners.len()
    }

    /// The three histograms from the joint words' counts (`counts.len() == words()`).
    pub fn split(&self, counts: &[u64]) -> SplitHistograms {
        assert_eq!(counts.len(), self.owners.len(), "joint histogram length");
        let mut h = SplitHistograms {
            hist: vec![0; self.hist_bins + 2],
            hist_pos: vec![0; self.pos_bins + 1],
            loghist_pos: vec![0; LOG_WORDS],
            loghist_neg: vec![0; LOG_WORDS],
        };
        for (o, &n) in self.owners.iter().zip(counts) {
            h.hist[o.linear] += n;
            if let Some(p) = o.positive {
                h.hist_pos[p] += n;
            }
            if o.negative {
                h.loghist_neg[o.log] += n;
            } else {
                h.loghist_pos[o.log] += n;
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The joint word of x by the formula the kernel uses, from the definitions.
    fn joint_word(j: &JointBins, hist: &LinearHistSpec, pos: &PosHistSpec, x: f32) -> usize {
        let le = hist.edges();
        let lg = log_edges();
        let lw = linear_word(hist, &le, x);
        if x > 0.0 {
            lw - j.lin_pos_min + positive_word(pos, &pos.edges(), x) + log_word(&lg, x)
        } else {
            j.neg_base + lw + (LOG_WORDS - 1 - log_word(&lg, x))
        }
    }

    #[test]
    fn every_value_splits_into_its_own_bins() {
        let specs = [
            (LinearHistSpec::default(), PosHistSpec::default()),
            (
                LinearHistSpec {
                    lo: -3.0,
                    hi: 7.0,
                    bins: 37,
                },
                PosHistSpec { hi: 2.5, bins: 13 },
            ),
            (
                LinearHistSpec {
                    lo: 0.1,
                    hi: 0.6,
                    bins: 4,
                },
                PosHistSpec { hi: 4.0, bins: 10 },
            ),
        ];
        for (hist, pos) in specs {
            let j = JointBins::new(&hist, &pos);
            assert!(j.words() <= hist.bins + pos.bins + 2 * LOG_WORDS + 1);
            assert_eq!(
                j.infinity_words(),
                (
                    joint_word(&j, &hist, &pos, f32::INFINITY),
                    joint_word(&j, &hist, &pos, f32::NEG_INFINITY)
                )
            );
            let (le, pe, lg) = (hist.edges(), pos.edges(), log_edges());
            let mut values: Vec<f32> = vec![
                f32::from_bits(1),
                -f32::from_bits(1),
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::MAX,
                f32::MIN,
                1e-30,
                -1e-30,
            ];
            for e in le.iter().chain(&pe).chain(&lg) {
                let f = *e as f32;
                values.extend([
                    f,
                    f.next_up(),
                    f.next_down(),
                    -f,
                    -f.next_up(),
                    -f.next_down(),
                ]);
            }
            for x in values.into_iter().filter(|x| *x != 0.0) {
                let w = joint_word(&j, &hist, &pos, x);
                let mut counts = vec![0; j.words()];
                counts[w] = 1;
                let s = j.split(&counts);
                let mut want = SplitHistograms {
                    hist: vec![0; hist.bins + 2],
                    hist_pos: vec![0; pos.bins + 1],
                    loghist_pos: vec![0; LOG_WORDS],
                    loghist_neg: vec![0; LOG_WORDS],
                };
                want.hist[linear_word(&hist, &le, x)] = 1;
                if x > 0.0 {
                    want.hist_pos[positive_word(&pos, &pe, x)] = 1;
                    want.loghist_pos[log_word(&lg, x)] = 1;
                } else {
                    want.loghist_neg[log_word(&lg, x)] = 1;
                }
                assert_eq!(s, want, "x = {x:e} (joint word {w})");
            }
        }
    }
}
