//! `TapTotals`: every statistic of one tap after the pass, finalised in f64 on the CPU. The
//! arrays become the `.npy` files of ../shared/DESIGN.md "Outputs"; the scalars (and histogram
//! edges, under- and overflow) serialise into `summary.json`.

use serde::Serialize;

use crate::stats::spec::{LinearHistSpec, PosHistSpec, Predicate, log_edges};

/// A histogram with edges fixed before the pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Histogram {
    /// The `counts.len() + 1` bin edges, in f64.
    pub edges: Vec<f64>,
    /// Which end of a bin is closed: "left" ([e_i, e_{i+1})) or "right" ((e_i, e_{i+1}]).
    pub closed: &'static str,
    /// Counts per bin (u64; `.npy` output, not in the summary).
    #[serde(skip)]
    pub counts: Vec<u64>,
    /// Values below the first edge (left-closed) or, for `hist_pos`, always 0.
    pub underflow: u64,
    /// Values beyond the last edge (+Inf included).
    pub overflow: u64,
}

impl Histogram {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.underflow + self.overflow
    }
}

/// The raw sums behind a mean and standard deviation, kept so that totals of shards merge
/// exactly (Chan et al.'s pairwise update): `count` values x with `sum_dev` = sum(x - shift)
/// and `sum_dev2` = sum((x - shift)^2), accumulated in (at least) double-f32 on the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct Moments {
    pub count: u64,
    pub shift: f64,
    pub sum_dev: f64,
    pub sum_dev2: f64,
}

impl Moments {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.shift + self.sum_dev / self.count as f64)
    }

    /// Population standard deviation (ddof = 0, numpy's default).
    pub fn std(&self) -> Option<f64> {
        (self.count > 0).then(|| {
            let n = self.count as f64;
            let m = self.sum_dev / n;
            (self.sum_dev2 / n - m * m).max(0.0).sqrt()
        })
    }

    /// Combine with the moments of another set of values.
    pub fn merge(&self, other: &Moments) -> Moments {
        if other.count == 0 {
            return *self;
        }
        if self.count == 0 {
            return *other;
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let (ma, mb) = (self.mean().unwrap(), other.mean().unwrap());
        let m2a = self.sum_dev2 - self.sum_dev * self.sum_dev / na;
        let m2b = other.sum_dev2 - other.sum_dev * other.sum_dev / nb;
        let delta = mb - ma;
        let n = na + nb;
        Moments {
            count: self.count + other.count,
            shift: ma + delta * nb / n,
            sum_dev: 0.0,
            sum_dev2: m2a + m2b + delta * delta * na * nb / n,
        }
    }
}

/// Every statistic of one tap `[N images, P positions, C channels]` after a pass, with the
/// definitions of ../shared/DESIGN.md "Statistic definitions". Counts are exact (u64, from
/// 64-bit GPU totals); rates and moments are finalised in f64. Fields marked "array" are
/// `.npy` outputs and skipped by `Serialize`; the rest is the tap's part of `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TapTotals {
    /// N, the images seen.
    pub images: u64,
    /// P, positions per image (tokens including CLS for a ViT, H*W for a CNN).
    pub positions: usize,
    /// C, channels.
    pub channels: usize,
    /// N * P * C.
    pub entries: u64,
    /// The activity predicate ('gt:T': x > T; 'absgt:T': |x| > T; NaN is never active).
    pub predicate: Predicate,

    /// Array [C]: firing_count[c] = #{(n, p): x[n, p, c] active}.
    #[serde(skip)]
    pub firing_count: Vec<u64>,
    /// Array [C]: firing_rate[c] = firing_count[c] / (N * P).
    #[serde(skip)]
    pub firing_rate: Vec<f64>,
    /// Array [C]: the number of images in which channel c is active at >= 1 position.
    #[serde(skip)]
    pub active_images: Vec<u64>,
    /// Array [C]: firing_rate_img[c] = active_images[c] / N.
    #[serde(skip)]
    pub firing_rate_img: Vec<f64>,
    /// Channels never active in any image (firing_count == 0).
    pub dead_channels: usize,

    /// K, the number of classes (0 when the images carry no labels).
    pub classes: usize,
    /// [K]: images per class.
    pub class_images: Vec<u64>,
    /// Array [K, C] row-major: images of class k in which channel c is active at >= 1 position.
    #[serde(skip)]
    pub active_images_by_class: Vec<u64>,
    /// Array [K, C]: active_images_by_class / class_images[k]; NaN for a class with no image.
    #[serde(skip)]
    pub firing_rate_img_by_class: Vec<f64>,

    /// Active entries of the whole tap (the sum of firing_count).
    pub active_entries: u64,
    /// Entries that are exactly 0 (+0 or -0).
    pub zero_entries: u64,
    /// Entries x != 0 (NaN included, as numpy's `x != 0`).
    pub nonzero_entries: u64,
    /// active_entries / entries (the blog's "% active").
    pub frac_active: f64,
    /// nonzero_entries / entries.
    pub frac_nonzero: f64,
    /// NaN entries.
    pub nan_count: u64,
    /// +Inf entries.
    pub posinf_count: u64,
    /// -Inf entries.
    pub neginf_count: u64,

    /// Mean over the finite entries (NaN and +-Inf are counted above, not averaged). The GPU
    /// sums x - shift (shift: a sample mean of the first batch) with exact per-addition error
    /// terms and double-f32 (~48-bit) totals: the absolute error is about 2^-48 of the largest
    /// partial sums, so far below 1e-6 relative unless huge values cancel each other.
    pub mean: Option<f64>,
    /// Population standard deviation (ddof = 0) over the finite entries.
    pub std: Option<f64>,
    /// Smallest finite entry.
    pub min: Option<f64>,
    /// Largest finite entry.
    pub max: Option<f64>,
    /// The raw sums behind mean and std (finite entries), for merging shards.
    pub moments: Moments,
    /// The GPU's f32 sums of (x - shift)^2 overflowed (a finite |x| beyond ~1e19): mean and
    /// std are not given (`None`); min, max and every count still are.
    pub moments_overflow: bool,

    /// Linear histogram, bins [e_i, e_{i+1}) on [lo, hi) (default 256 on [-16, 16));
    /// underflow x < lo and overflow x >= hi include -Inf and +Inf; NaN is in no bin.
    pub hist: Histogram,
    /// Positive values only, bins (e_i, e_{i+1}] on (0, hi] (default 100 on (0, 10]);
    /// overflow x > hi (+Inf included).
    pub hist_pos: Histogram,
    /// log2 bins of x > 0, 4 per octave over [2^-24, 2^8): bin j = [2^(-24 + j/4),
    /// 2^(-24 + (j+1)/4)); underflow 0 < x < 2^-24, overflow x >= 2^8 (+Inf included).
    pub loghist_pos: Histogram,
    /// The same for |x| of x < 0. Exact zeros are `zero_entries`.
    pub loghist_neg: Histogram,

    /// Mean over tokens of the Hoyer sparsity (sqrt(C) - |x|_1/|x|_2) / (sqrt(C) - 1) of each
    /// token's C-vector (1 for a zero vector, and for C = 1).
    pub hoyer_mean: Option<f64>,
    /// Population standard deviation of the per-token Hoyer values.
    pub hoyer_std: Option<f64>,
    /// Tokens in the Hoyer mean and std.
    pub hoyer_tokens: u64,
    /// Tokens left out: a NaN or Inf entry, or norms not representable in f32 (|x| beyond
    /// ~1e19 or all entries below ~1e-19).
    pub hoyer_excluded: u64,
    /// The raw sums behind the Hoyer mean and std.
    pub hoyer_moments: Moments,
}

/// Everything the GPU (or the reference) counted, before finalisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RawCounts {
    pub images: u64,
    pub firing_count: Vec<u64>,
    pub active_images: Vec<u64>,
    pub class_images: Vec<u64>,
    pub active_images_by_class: Vec<u64>,
    pub zero_entries: u64,
    pub nan_count: u64,
    pub posinf_count: u64,
    pub neginf_count: u64,
    /// [under, bins.., over]
    pub hist: Vec<u64>,
    /// [bins.., over]
    pub hist_pos: Vec<u64>,
    /// [under, bins.., over] each
    pub loghist_pos: Vec<u64>,
    pub loghist_neg: Vec<u64>,
    pub min: f64,
    pub max: f64,
    pub moments: Moments,
    pub hoyer_moments: Moments,
    pub hoyer_excluded: u64,
}

impl RawCounts {
    /// The counts of two disjoint sets of images of one tap: counts and histograms add (exactly),
    /// min and max combine, moments merge (Chan et al.).
    pub fn merge(&self, other: &RawCounts) -> RawCounts {
        let add = |a: &[u64], b: &[u64]| -> Vec<u64> {
            if a.is_empty() {
                return b.to_vec();
            }
            a.iter().zip(b).map(|(x, y)| x + y).collect()
        };
        RawCounts {
            images: self.images + other.images,
            firing_count: add(&self.firing_count, &other.firing_count),
            active_images: add(&self.active_images, &other.active_images),
            class_images: add(&self.class_images, &other.class_images),
            active_images_by_class: add(
                &self.active_images_by_class,
                &other.active_images_by_class,
            ),
            zero_entries: self.zero_entries + other.zero_entries,
            nan_count: self.nan_count + other.nan_count,
            posinf_count: self.posinf_count + other.posinf_count,
            neginf_count: self.neginf_count + other.neginf_count,
            hist: add(&self.hist, &other.hist),
            hist_pos: add(&self.hist_pos, &other.hist_pos),
            loghist_pos: add(&self.loghist_pos, &other.loghist_pos),
            loghist_neg: add(&self.loghist_neg, &other.loghist_neg),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            moments: self.moments.merge(&other.moments),
            hoyer_moments: self.hoyer_moments.merge(&other.hoyer_moments),
            hoyer_excluded: self.hoyer_excluded + other.hoyer_excluded,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

impl TapTotals {
    /// Finalise raw counts in f64. `hist` must already hold the zeros in their bin.
    pub fn finalise(
        raw: RawCounts,
        positions: usize,
        channels: usize,
        predicate: Predicate,
        hist: &LinearHistSpec,
        hist_pos: &PosHistSpec,
    ) -> TapTotals {
        let n = raw.images;
        let tokens = n * positions as u64;
        let entries = tokens * channels as u64;
        let classes = raw.class_images.len();
        let active_entries: u64 = raw.firing_count.iter().sum();
        let nonzero_entries = entries - raw.zero_entries;
        let finite = raw.moments.count;
        let moments_ok = raw.moments.sum_dev.is_finite() && raw.moments.sum_dev2.is_finite();
        let split = |v: &[u64], spec_edges: Vec<f64>, closed| Histogram {
            counts: v[1..v.len() - 1].to_vec(),
            underflow: v[0],
            overflow: v[v.len() - 1],
            edges: spec_edges,
            closed,
        };
        let hist_pos_counts = raw.hist_pos[..raw.hist_pos.len() - 1].to_vec();
        TapTotals {
            images: n,
            positions,
            channels,
            entries,
            predicate,
            firing_rate: raw.firing_count.iter().map(|&c| ratio(c, tokens)).collect(),
            dead_channels: raw.firing_count.iter().filter(|&&c| c == 0).count(),
            firing_count: raw.firing_count,
            firing_rate_img: raw.active_images.iter().map(|&c| ratio(c, n)).collect(),
            active_images: raw.active_images,
            classes,
            firing_rate_img_by_class: raw
                .active_images_by_class
                .iter()
                .enumerate()
                .map(|(i, &c)| ratio(c, raw.class_images[i / channels.max(1)]))
                .collect(),
            class_images: raw.class_images,
            active_images_by_class: raw.active_images_by_class,
            active_entries,
            zero_entries: raw.zero_entries,
            nonzero_entries,
            frac_active: ratio(active_entries, entries),
            frac_nonzero: ratio(nonzero_entries, entries),
            nan_count: raw.nan_count,
            posinf_count: raw.posinf_count,
            neginf_count: raw.neginf_count,
            mean: moments_ok.then(|| raw.moments.mean()).flatten(),
            std: moments_ok.then(|| raw.moments.std()).flatten(),
            moments_overflow: !moments_ok,
            min: (finite > 0).then_some(raw.min),
            max: (finite > 0).then_some(raw.max),
            moments: raw.moments,
            hist: split(&raw.hist, hist.edges(), "left"),
            hist_pos: Histogram {
                edges: hist_pos.edges(),
                closed: "right",
                counts: hist_pos_counts,
                underflow: 0,
                overflow: raw.hist_pos[raw.hist_pos.len() - 1],
            },
            loghist_pos: split(&raw.loghist_pos, log_edges(), "left"),
            loghist_neg: split(&raw.loghist_neg, log_edges(), "left"),
            hoyer_mean: raw.hoyer_moments.mean(),
            hoyer_std: raw.hoyer_moments.std(),
            hoyer_tokens: raw.hoyer_moments.count,
            hoyer_excluded: raw.hoyer_excluded,
            hoyer_moments: raw.hoyer_moments,
        }
    }

    /// Per class, the channels never active in any image of that class.
    pub fn never_active_by_class(&self) -> Vec<Vec<usize>> {
        (0..self.classes)
            .map(|k| {
                (0..self.channels)
                    .filter(|&c| self.active_images_by_class[k * self.channels + c] == 0)
                    .collect()
            })
            .collect()
    }
}
