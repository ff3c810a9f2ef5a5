//! `sparsescope prune`: how much of a tap's representational geometry survives dropping its
//! most rarely-firing channels (after Truong, Bavaresco & Hasson, CCN 2023).
//!
//! Per tap (DESIGN.md "Pruning"):
//! - channels ranked ascending by a score, ties by channel index: `firing` = firing_rate[c]
//!   (the run's share of (image, position) entries where the channel is active); `std` = the
//!   standard deviation over images of the channel's pooled (position-averaged) activation,
//!   from pooled.npy (population form, divisor N; the run keeps no per-channel std of the raw
//!   entries); `entropy` = the binary entropy in bits of firing_rate[c], -r log2 r - (1-r)
//!   log2(1-r), which is low both for channels that almost never and almost always fire;
//! - for k = 0, 10, ..., 90 %: drop the first floor(k C / 100) channels of that order and
//!   report RSA(kept, full) for pooled features ([N, C_kept], exact, CPU) and for flat features
//!   ([N, P * C_kept], from a second GPU pass, `prune_pass`), with the run's RDM measure and the
//!   chosen RSA method;
//! - a random-drop baseline: `random_repeats` seeded random orders of the channels, each
//!   dropped the same counts (the first floor(k C / 100) of the random order, so the dropped
//!   sets are nested as in the ranked curve); mean, min and max over the repeats;
//! - the variance of the full pooled features explained by the dropped channels alone: ridge
//!   regression with exact leave-one-out R^2 (`analysis::ridge`, default alpha search), for the
//!   ranked and the random drops;
//! - with class labels: per class, the channels never active in any image of the class
//!   (firing_rate_img_by_class == 0), and those among them active for some other class.
//!
//! Both feature kinds use one computation: the channels of an order fall into ten groups
//! between consecutive levels, each group's Gram is computed once (f64 on the CPU for pooled
//! features, on the GPU for flat ones), and level k's kept Gram is `Gram::concat` of groups
//! k..9, so every level costs a concatenation, not a new Gram.
//!
//! A value that does not exist (a kept RDM that is constant, e.g. one channel left under the
//! correlation measure) is written as null with the reason, never as NaN.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::SplitMix64;
use crate::analysis::prune_pass::{GroupedTap, PassOptions, group_grams, rerun_source};
use crate::analysis::ridge::{Penalty, RidgeLoo, variance_explained_by_columns};
use crate::analysis::rsa::{Method, Prepared};
use crate::analysis::rsa_report::{chosen_taps, write_json_atomic};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions};
use crate::model::{ModelOptions, TapInfo};
use crate::npy::read_npy;
use crate::outdir::RunDir;
use crate::rdm::{FlatMode, Gram, Measure, Rdm};

/// The pruning levels, in percent of a tap's channels.
pub const PERCENTS: [usize; 10] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90];

/// Tag of the random-drop orders' SplitMix64 streams ("prune!!!").
const TAG_RANDOM_DROP: u64 = 0x7072_756e_6521_2121;

/// Channels dropped at `percent` of `channels`: floor(percent * channels / 100).
pub fn dropped_count(percent: usize, channels: usize) -> usize {
    percent * channels / 100
}

/// How channels are ranked for dropping (ascending; ties by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rank {
    Firing,
    Std,
    Entropy,
}

impl Rank {
    pub fn name(self) -> &'static str {
        match self {
            Rank::Firing => "firing",
            Rank::Std => "std",
            Rank::Entropy => "entropy",
        }
    }

    pub fn parse(s: &str) -> Result<Rank> {
        match s.to_ascii_lowercase().as_str() {
            "firing" | "firing_rate" => Ok(Rank::Firing),
            "std" => Ok(Rank::Std),
            "entropy" => Ok(Rank::Entropy),
            other => Err(Error::Usage(format!(
                "unknown --rank '{other}': expected firing, std or entropy"
            ))),
        }
    }

    /// What the score of a channel is, as written in the outputs.
    pub fn definition(self) -> &'static str {
        match self {
            Rank::Firing => {
                "firing_rate[c]: share of (image, position) entries with the channel active (the run's predicate)"
            }
            Rank::Std => {
                "standard deviation over images (divisor N) of the channel's pooled (position-averaged) activation, from pooled.npy"
            }
            Rank::Entropy => {
                "binary entropy in bits of firing_rate[c]: -r log2 r - (1 - r) log2 (1 - r)"
            }
        }
    }
}

/// Whether the per-class silent channels are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassOutput {
    /// When the run has class labels.
    IfLabelled,
    /// Always; an error when the run has no labels.
    Required,
    Off,
}

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Tap names or globs (all taps of the run when empty).
    pub taps: Vec<String>,
    pub rank: Rank,
    pub seed: u64,
    pub measure: Measure,
    pub method: Method,
    pub random_repeats: usize,
    /// Run the GPU pass for the flat-feature curves.
    pub flat: bool,
    pub classes: ClassOutput,
    /// RSA(kept, full) a level must reach to count as prunable.
    pub threshold: f64,
    /// GPU bytes for the flat Grams of one pass (default: the run's --rdm-budget).
    pub rdm_budget: Option<u64>,
    /// Sketch dimension beyond the budget (default: the run's).
    pub sketch_dim: Option<usize>,
    /// Images per GPU batch (default: the run's).
    pub batch: Option<usize>,
    /// The checkpoint (default: the run's model path); its sha256 must match the run's.
    pub model: Option<PathBuf>,
    pub model_options: ModelOptions,
    pub gpu: GpuOptions,
    pub threads: usize,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            taps: Vec::new(),
            rank: Rank::Firing,
            seed: 0,
            measure: Measure::Correlation,
            method: Method::Spearman,
            random_repeats: 5,
            flat: true,
            classes: ClassOutput::IfLabelled,
            threshold: 0.95,
            rdm_budget: None,
            sketch_dim: None,
            batch: None,
            model: None,
            model_options: ModelOptions::default(),
            gpu: GpuOptions::default(),
            threads: 1,
        }
    }
}

/// A statistic over the random repeats.
#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    /// Mean, min and max over the repeats where the value exists (null when none does).
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// One value per repeat (null where undefined).
    pub values: Vec<Option<f64>>,
}

impl Spread {
    fn of(values: Vec<Option<f64>>) -> Spread {
        let defined: Vec<f64> = values.iter().flatten().copied().collect();
        let (mean, min, max) = if defined.is_empty() {
            (None, None, None)
        } else {
            (
                Some(defined.iter().sum::<f64>() / defined.len() as f64),
                defined.iter().copied().reduce(f64::min),
                defined.iter().copied().reduce(f64::max),
            )
        };
        Spread {
            mean,
            min,
            max,
            values,
        }
    }
}

/// One pruning level of one tap.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub percent: usize,
    pub dropped: usize,
    pub kept: usize,
    /// RSA(kept, full) of pooled features, ranked drop.
    pub pooled_rsa: Option<f64>,
    pub pooled_random: Spread,
    /// RSA(kept, full) of flat features (null without the GPU pass).
    pub flat_rsa: Option<f64>,
    pub flat_random: Option<Spread>,
    /// Leave-one-out R^2 of the full pooled features from the dropped channels alone.
    pub variance_explained: Option<f64>,
    pub ridge: Option<RidgeLoo>,
    pub variance_explained_random: Spread,
    /// Why a value above is null.
    pub undefined: Vec<String>,
}

/// Channels never active for one class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSilence {
    pub class: String,
    pub images: usize,
    /// Channels active in no image of this class.
    pub never_active: Vec<usize>,
    /// Of those, the channels active in some image of another class.
    pub active_elsewhere: Vec<usize>,
}

/// The flat curves' provenance.
#[derive(Debug, Clone, Serialize)]
pub struct FlatInfo {
    /// Exact, or sketched (each channel group with its own seed derived from this one).
    pub mode: FlatMode,
    /// Max |difference| between the full flat RDM of the second pass and the run's
    /// rdm_flat_<measure>.npy (when the run wrote it): the second pass reproduces the run.
    pub full_vs_run_max_abs_diff: Option<f64>,
}

/// Everything computed for one tap: `OUT/prune/<tap>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TapPrune {
    pub tap: String,
    pub depth: usize,
    pub positions: usize,
    pub channels: usize,
    pub images: usize,
    pub rank: Rank,
    pub rank_definition: &'static str,
    pub measure: Measure,
    pub method: Method,
    pub seed: u64,
    pub random_repeats: usize,
    /// The ranking score of each channel, in channel order.
    pub score: Vec<f64>,
    /// Channels in drop order: ascending score, ties by index. Level k drops order[..dropped].
    pub order: Vec<usize>,
    /// Channels that never fired in the run (firing_rate == 0).
    pub never_firing: usize,
    pub levels: Vec<Level>,
    pub threshold: f64,
    /// The largest level whose RSA, and that of every level below it, is >= the threshold.
    pub prunable_percent_pooled: Option<usize>,
    pub prunable_percent_flat: Option<usize>,
    pub flat: Option<FlatInfo>,
    /// Class names of the run, with their silent channels (when labelled).
    pub by_class: Option<Vec<ClassSilence>>,
}

/// The command's result: per tap its analysis or the reason it has none.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub run: PathBuf,
    pub images: usize,
    pub rank: Rank,
    pub measure: Measure,
    pub method: Method,
    pub random_repeats: usize,
    pub seed: u64,
    pub flat_passes: usize,
    pub taps: Vec<TapPrune>,
    /// (tap, error) for taps with no analysis.
    pub failed: Vec<(String, String)>,
    /// Files written, relative to OUT.
    pub files: Vec<PathBuf>,
    pub seconds: f64,
}

/// Channels ascending by score, ties by index.
pub fn drop_order(score: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
    order
}

/// Random order `repeat` of `channels` channels under `seed`.
pub fn random_order(channels: usize, seed: u64, repeat: usize) -> Vec<usize> {
    SplitMix64::stream(seed, TAG_RANDOM_DROP, repeat as u64).permutation(channels)
}

/// The ten channel groups of an order: group j holds order[d_j..d_{j+1}] (d_j the count
/// dropped at level j, d_10 = C), sorted by channel index.
pub fn level_groups(order: &[usize]) -> Vec<Vec<usize>> {
    let c = order.len();
    let bounds: Vec<usize> = PERCENTS
        .iter()
        .map(|&p| dropped_count(p, c))
        .chain([c])
        .collect();
    bounds
        .windows(2)
        .map(|w| {
            let mut g = order[w[0]..w[1]].to_vec();
            g.sort_unstable();
            g
        })
        .collect()
}

fn binary_entropy(r: f64) -> f64 {
    let h = |p: f64| if p > 0.0 { -p * p.log2() } else { 0.0 };
    h(r) + h(1.0 - r)
}

/// The pooled columns `cols` of [n, c] `x`, as [n, cols.len()].
fn columns(x: &[f32], n: usize, c: usize, cols: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * cols.len());
    for i in 0..n {
        let row = &x[i * c..(i + 1) * c];
        out.extend(cols.iter().map(|&k| row[k]));
    }
    out
}

/// RSA of the kept features' RDM (from its Gram) with the prepared full RDM; the reason when it
/// does not exist.
fn kept_rsa(
    gram: &Gram,
    full: &Prepared,
    measure: Measure,
    method: Method,
    what: &str,
) -> std::result::Result<f64, String> {
    let rdm = gram.rdm(measure);
    Prepared::new(what, &rdm, method)
        .and_then(|p| p.compare(full))
        .map_err(|e| e.to_string())
}

/// RSA(kept, full) at every level of one order, from the order's group Grams: level k keeps
/// groups k..9, so the levels are built from the top down, level k = level k+1 concatenated
/// with group k (one N x N Gram alive beside the groups, two parts per concatenation).
fn order_level_rsa(
    groups: &[Option<Gram>],
    full: &Prepared,
    measure: Measure,
    method: Method,
    what: &str,
) -> Result<Vec<std::result::Result<f64, String>>> {
    let mut out = Vec::with_capacity(PERCENTS.len());
    let mut level: Option<Gram> = None;
    for k in (0..PERCENTS.len()).rev() {
        level = match (level, &groups[k]) {
            (None, g) => g.clone(),
            (Some(l), None) => Some(l),
            (Some(l), Some(g)) => Some(Gram::concat(&[&l, g])?),
        };
        out.push(match &level {
            Some(g) => kept_rsa(g, full, measure, method, what),
            // Only when every group so far is empty; group 9 never is (it holds at least the
            // last channel), so this does not happen.
            None => Err("no channel is kept".to_string()),
        });
    }
    out.reverse();
    Ok(out)
}

/// The largest level whose value and those of all levels below reach `threshold`.
fn prunable(
    levels: &[Level],
    value: impl Fn(&Level) -> Option<f64>,
    threshold: f64,
) -> Option<usize> {
    let mut best = None;
    for l in levels {
        match value(l) {
            Some(v) if v >= threshold => best = Some(l.percent),
            _ => break,
        }
    }
    best
}

/// The CPU part of one tap: scores, orders, groups, pooled curves, ridge, classes.
struct TapWork {
    info: TapInfo,
    score: Vec<f64>,
    /// orders[0] ranked, then the random ones.
    orders: Vec<Vec<usize>>,
    never_firing: usize,
}

fn tap_work(run: &RunDir, info: &TapInfo, options: &PruneOptions) -> Result<TapWork> {
    let c = info.channels;
    let n = run.n_images();
    let (shape, rate) = run.array::<f64>(&info.name, "firing_rate")?;
    if shape != [c] {
        return Err(Error::file(
            run.array_path(&info.name, "firing_rate"),
            format!("shape {shape:?}, expected [{c}]"),
        ));
    }
    let score: Vec<f64> = match options.rank {
        Rank::Firing => rate.clone(),
        Rank::Entropy => rate.iter().map(|&r| binary_entropy(r)).collect(),
        Rank::Std => {
            let x = pooled(run, info)?;
            (0..c)
                .map(|k| {
                    let mean = (0..n).map(|i| x[i * c + k] as f64).sum::<f64>() / n as f64;
                    let var = (0..n)
                        .map(|i| (x[i * c + k] as f64 - mean).powi(2))
                        .sum::<f64>()
                        / n as f64;
                    var.sqrt()
                })
                .collect()
        }
    };
    let mut orders = vec![drop_order(&score)];
    orders.extend((0..options.random_repeats).map(|r| random_order(c, options.seed, r)));
    Ok(TapWork {
        info: info.clone(),
        score,
        orders,
        never_firing: rate.iter().filter(|&&r| r == 0.0).count(),
    })
}

fn pooled(run: &RunDir, info: &TapInfo) -> Result<Vec<f32>> {
    let n = run.n_images();
    let (shape, x) = run.array::<f32>(&info.name, "pooled")?;
    if shape != [n, info.channels] {
        return Err(Error::file(
            run.array_path(&info.name, "pooled"),
            format!("shape {shape:?}, expected [{n}, {}]", info.channels),
        ));
    }
    Ok(x)
}

/// Per-class silent channels of one tap.
fn class_silence(
    run: &RunDir,
    info: &TapInfo,
    labels: &(Vec<usize>, Vec<String>),
) -> Result<Vec<ClassSilence>> {
    let (idx, classes) = labels;
    let c = info.channels;
    let path = run.array_path(&info.name, "firing_rate_img_by_class");
    if !path.exists() {
        return Err(Error::file(
            &path,
            "missing, though images.txt has class labels; was the run made by an older sparsescope?",
        ));
    }
    let (shape, rates) = read_npy::<f64>(&path)?;
    if shape != [classes.len(), c] {
        return Err(Error::file(
            &path,
            format!("shape {shape:?}, expected [{}, {c}]", classes.len()),
        ));
    }
    Ok(classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let row = &rates[k * c..(k + 1) * c];
            let never: Vec<usize> = (0..c).filter(|&ch| row[ch] == 0.0).collect();
            let elsewhere = never
                .iter()
                .copied()
                .filter(|&ch| (0..classes.len()).any(|o| o != k && rates[o * c + ch] > 0.0))
                .collect();
            ClassSilence {
                class: name.clone(),
                images: idx.iter().filter(|&&l| l == k).count(),
                never_active: never,
                active_elsewhere: elsewhere,
            }
        })
        .collect())
}

/// Pooled curves, ridge and classes of one tap; flat curves are filled in later.
fn analyse_tap(
    run: &RunDir,
    work: &TapWork,
    options: &PruneOptions,
    labels: Option<&(Vec<usize>, Vec<String>)>,
) -> Result<TapPrune> {
    let info = &work.info;
    let (n, c) = (run.n_images(), info.channels);
    let x = pooled(run, info)?;
    let what = |s: &str| {
        format!(
            "the {s} {} RDM of tap '{}'",
            options.measure.name(),
            info.name
        )
    };
    let full_rdm = Gram::from_features(&x, n, c)?.rdm(options.measure);
    let full = Prepared::new(&what("full pooled"), &full_rdm, options.method).map_err(|e| {
        Error::Undefined {
            what: format!("pruning of tap '{}'", info.name),
            why: format!(
                "{e}{}",
                if c == 1 && options.measure == Measure::Correlation {
                    " (a tap of one channel has no pooled correlation structure; try --measure euclidean)"
                } else {
                    ""
                }
            ),
        }
    })?;
    // Pooled level Grams of every order.
    let level_rsa: Vec<Vec<std::result::Result<f64, String>>> = work
        .orders
        .iter()
        .map(|order| {
            let groups: Vec<Option<Gram>> = level_groups(order)
                .iter()
                .map(|g| {
                    if g.is_empty() {
                        Ok(None)
                    } else {
                        Gram::from_features(&columns(&x, n, c, g), n, g.len()).map(Some)
                    }
                })
                .collect::<Result<_>>()?;
            order_level_rsa(
                &groups,
                &full,
                options.measure,
                options.method,
                &what("kept pooled"),
            )
        })
        .collect::<Result<_>>()?;
    let ridge = |dropped: &[usize]| {
        variance_explained_by_columns(&x, n, c, dropped, &Penalty::default())
            .map_err(|e| e.to_string())
    };
    let mut levels = Vec::with_capacity(PERCENTS.len());
    for (k, &percent) in PERCENTS.iter().enumerate() {
        let d = dropped_count(percent, c);
        let mut undefined = Vec::new();
        let mut keep = |r: &std::result::Result<f64, String>, label: &str| match r {
            Ok(v) => Some(*v),
            Err(e) => {
                undefined.push(format!("{label}: {e}"));
                None
            }
        };
        let pooled_rsa = keep(&level_rsa[0][k], "pooled RSA");
        let pooled_random = Spread::of(
            level_rsa[1..]
                .iter()
                .map(|r| keep(&r[k], "pooled RSA, random drop"))
                .collect(),
        );
        let fit = ridge(&work.orders[0][..d]);
        let variance_explained = keep(
            &fit.as_ref().map(|f| f.r2).map_err(Clone::clone),
            "variance explained",
        );
        let random_r2 = work.orders[1..]
            .iter()
            .map(|o| {
                keep(
                    &ridge(&o[..d]).map(|f| f.r2),
                    "variance explained, random drop",
                )
            })
            .collect();
        levels.push(Level {
            percent,
            dropped: d,
            kept: c - d,
            pooled_rsa,
            pooled_random,
            flat_rsa: None,
            flat_random: None,
            variance_explained,
            ridge: fit.ok(),
            variance_explained_random: Spread::of(random_r2),
            undefined,
        });
    }
    let by_class = match labels {
        Some(l) if options.classes != ClassOutput::Off => Some(class_silence(run, info, l)?),
        _ => None,
    };
    Ok(TapPrune {
        tap: info.name.clone(),
        depth: info.depth,
        positions: info.positions,
        channels: c,
        images: n,
        rank: options.rank,
        rank_definition: options.rank.definition(),
        measure: options.measure,
        method: options.method,
        seed: options.seed,
        random_repeats: options.random_repeats,
        score: work.score.clone(),
        order: work.orders[0].clone(),
        never_firing: work.never_firing,
        prunable_percent_pooled: prunable(&levels, |l| l.pooled_rsa, options.threshold),
        prunable_percent_flat: None,
        levels,
        threshold: options.threshold,
        flat: None,
        by_class,
    })
}

/// The flat curves of one tap, gathered one ordering at a time as the GPU pass hands them over.
struct FlatCurves {
    mode: FlatMode,
    full_vs_run: Option<f64>,
    /// The prepared full flat RDM (from the ranked order's level 0), or why it has none.
    full: std::result::Result<Prepared, String>,
    /// Per ordering, per level.
    rsa: Vec<Vec<std::result::Result<f64, String>>>,
}

impl FlatCurves {
    /// Take the group Grams of ordering `o` (ordering 0, the ranked one, comes first).
    fn add(
        slot: &mut Option<FlatCurves>,
        run: &RunDir,
        tap: &TapPrune,
        o: usize,
        mode: FlatMode,
        groups: Vec<Option<Gram>>,
        options: &PruneOptions,
    ) -> Result<()> {
        let what = |s: &str| {
            format!(
                "the {s} {} RDM of tap '{}'",
                options.measure.name(),
                tap.tap
            )
        };
        if o == 0 {
            let parts: Vec<&Gram> = groups.iter().flatten().collect();
            let full_rdm: Rdm = Gram::concat(&parts)?.rdm(options.measure);
            let run_file =
                run.array_path(&tap.tap, &format!("rdm_flat_{}", options.measure.name()));
            let full_vs_run = if run_file.exists() {
                let (shape, v) = read_npy::<f64>(&run_file)?;
                (shape == [tap.images, tap.images]).then(|| {
                    v.iter()
                        .zip(full_rdm.as_slice())
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max)
                })
            } else {
                None
            };
            *slot = Some(FlatCurves {
                mode,
                full_vs_run,
                full: Prepared::new(&what("full flat"), &full_rdm, options.method)
                    .map_err(|e| e.to_string()),
                rsa: Vec::new(),
            });
        }
        let curves = slot
            .as_mut()
            .ok_or_else(|| Error::shape("prune", "the ranked order's Grams must come first"))?;
        let levels = match &curves.full {
            Ok(full) => order_level_rsa(
                &groups,
                full,
                options.measure,
                options.method,
                &what("kept flat"),
            )?,
            Err(e) => vec![Err(e.clone()); PERCENTS.len()],
        };
        curves.rsa.push(levels);
        Ok(())
    }

    /// Write the curves into the tap's levels.
    fn fill(self, tap: &mut TapPrune) {
        tap.flat = Some(FlatInfo {
            mode: self.mode,
            full_vs_run_max_abs_diff: self.full_vs_run,
        });
        for (k, level) in tap.levels.iter_mut().enumerate() {
            let mut values = self.rsa.iter().map(|per_level| &per_level[k]);
            level.flat_rsa = match values.next() {
                Some(Ok(v)) => Some(*v),
                Some(Err(e)) => {
                    level.undefined.push(format!("flat RSA: {e}"));
                    None
                }
                None => None,
            };
            let random: Vec<Option<f64>> = values
                .map(|r| match r {
                    Ok(v) => Some(*v),
                    Err(e) => {
                        level.undefined.push(format!("flat RSA, random drop: {e}"));
                        None
                    }
                })
                .collect();
            level.flat_random = Some(Spread::of(random));
        }
        tap.prunable_percent_flat = prunable(&tap.levels, |l| l.flat_rsa, tap.threshold);
    }
}

/// Run `prune` on the run at `out`: write `out/prune/<tap>.json` and `out/prune/summary.json`.
/// `progress(images done, pass)` follows the GPU pass.
pub fn prune_command(
    out: &Path,
    options: &PruneOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PruneReport> {
    let started = std::time::Instant::now();
    let run = RunDir::open(out)?;
    let n = run.n_images();
    if n < 3 {
        return Err(Error::Undefined {
            what: format!("pruning for the run at {}", run.path.display()),
            why: format!(
                "it has {n} image(s); RSA(kept, full) and leave-one-out R^2 need 3 images or more"
            ),
        });
    }
    if !(options.threshold > -1.0 && options.threshold <= 1.0) {
        return Err(Error::Usage(format!(
            "--threshold {} is not an RSA value in (-1, 1]",
            options.threshold
        )));
    }
    let labels = run.labels();
    if options.classes == ClassOutput::Required && labels.is_none() {
        return Err(Error::Usage(format!(
            "{} has no class labels (no tab-separated label after each path), so there are no \
             per-class silent channels; put the images in one sub-folder per class and rerun \
             `sparsescope run`",
            run.path.join("images.txt").display()
        )));
    }
    let taps = chosen_taps(&run, &options.taps)?;
    let mut works = Vec::new();
    let mut failed = Vec::new();
    let mut results: Vec<TapPrune> = Vec::new();
    for t in &taps {
        let r = tap_work(&run, t, options)
            .and_then(|w| analyse_tap(&run, &w, options, labels.as_ref()).map(|p| (w, p)));
        match r {
            Ok((w, p)) => {
                works.push(w);
                results.push(p);
            }
            Err(e) => failed.push((t.name.clone(), e.to_string())),
        }
    }
    if results.is_empty() {
        let (tap, e) = &failed[0];
        return Err(Error::Usage(format!(
            "no tap could be analysed; tap '{tap}': {e}"
        )));
    }

    let mut flat_passes = 0;
    if options.flat {
        let gpu = Gpu::new(&options.gpu)?;
        let model = super::open_run_model(
            &gpu,
            &run,
            options.model.as_deref(),
            &options.model_options,
            "pass --model, or --no-flat for the pooled curves only",
        )?;
        let (h, w) = run.image_hw()?;
        let model_taps = model.taps(h, w)?;
        let grouped: Vec<GroupedTap> = works
            .iter()
            .map(|wk| {
                let model_tap = model_taps
                    .iter()
                    .position(|m| m.name == wk.info.name)
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "tap '{}' of the run is not a tap of the model now",
                            wk.info.name
                        ))
                    })?;
                Ok(GroupedTap {
                    model_tap,
                    name: wk.info.name.clone(),
                    positions: wk.info.positions,
                    channels: wk.info.channels,
                    groups: wk
                        .orders
                        .iter()
                        .map(|o| {
                            level_groups(o)
                                .into_iter()
                                .map(|g| g.into_iter().map(|c| c as u32).collect())
                                .collect()
                        })
                        .collect(),
                })
            })
            .collect::<Result<_>>()?;
        let flags = &run.summary["flags"];
        let pass = PassOptions {
            batch: options.batch.unwrap_or_else(|| run.batch()),
            budget: options
                .rdm_budget
                .unwrap_or_else(|| flags["rdm_budget"].as_u64().unwrap_or(1 << 30)),
            sketch_dim: options.sketch_dim.unwrap_or_else(|| {
                flags["sketch_dim"]
                    .as_u64()
                    .map_or(crate::rdm::DEFAULT_SKETCH_DIM, |v| v as usize)
            }),
            seed: options.seed,
            threads: options.threads,
        };
        let preprocess = model.preprocess();
        let make_source = || rerun_source(&run, &preprocess, pass.batch.clamp(1, n), pass.threads);
        let mut curves: Vec<Option<FlatCurves>> = results.iter().map(|_| None).collect();
        flat_passes = group_grams(
            &gpu,
            model.as_ref(),
            &grouped,
            (h, w),
            n,
            &make_source,
            &pass,
            progress,
            &mut |t, o, mode, groups| {
                FlatCurves::add(&mut curves[t], &run, &results[t], o, mode, groups, options)
            },
        )?;
        for (tap, c) in results.iter_mut().zip(curves) {
            if let Some(c) = c {
                c.fill(tap);
            }
        }
    }

    let dir = out.join("prune");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::file(&dir, format!("cannot create the output folder: {e}")))?;
    let mut files = Vec::new();
    for t in &results {
        let name = format!("{}.json", t.tap);
        write_json_atomic(&dir.join(&name), t)?;
        files.push(PathBuf::from("prune").join(name));
    }
    let mut report = PruneReport {
        run: out.to_path_buf(),
        images: n,
        rank: options.rank,
        measure: options.measure,
        method: options.method,
        random_repeats: options.random_repeats,
        seed: options.seed,
        flat_passes,
        taps: results,
        failed,
        files,
        seconds: 0.0,
    };
    report.seconds = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "run": report.run,
        "images": n,
        "rank": report.rank,
        "rank_definition": options.rank.definition(),
        "measure": report.measure,
        "method": report.method,
        "random_repeats": report.random_repeats,
        "seed": report.seed,
        "threshold": options.threshold,
        "percents": PERCENTS,
        "flat": options.flat,
        "flat_passes": flat_passes,
        "seconds": report.seconds,
        "taps": report.taps.iter().map(|t| serde_json::json!({
            "tap": t.tap,
            "file": format!("prune/{}.json", t.tap),
            "channels": t.channels,
            "never_firing": t.never_firing,
            "prunable_percent_pooled": t.prunable_percent_pooled,
            "prunable_percent_flat": t.prunable_percent_flat,
            "pooled_rsa": t.levels.iter().map(|l| l.pooled_rsa).collect::<Vec<_>>(),
            "pooled_random_mean": t.levels.iter().map(|l| l.pooled_random.mean).collect::<Vec<_>>(),
            "flat_rsa": t.levels.iter().map(|l| l.flat_rsa).collect::<Vec<_>>(),
            "flat_random_mean": t.levels.iter().map(|l| l.flat_random.as_ref().and_then(|s| s.mean)).collect::<Vec<_>>(),
            "variance_explained": t.levels.iter().map(|l| l.variance_explained).collect::<Vec<_>>(),
            "variance_explained_random_mean": t.levels.iter().map(|l| l.variance_explained_random.mean).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "failed": report.failed.iter().map(|(t, e)| serde_json::json!({"tap": t, "error": e})).collect::<Vec<_>>(),
    });
    write_json_atomic(&dir.join("summary.json"), &summary)?;
    report.files.push(PathBuf::from("prune/summary.json"));
    Ok(report)
}

impl PruneReport {
    /// The terminal table: per tap, RSA(kept, full) at 20% and 50% dropped (ranked vs the
    /// random mean), the dropped channels' R^2 there, and the prunable share.
    pub fn table(&self) -> String {
        let width = self
            .taps
            .iter()
            .map(|t| t.tap.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let pair = |a: Option<f64>, b: Option<f64>| format!("{}/{}", f(a), f(b));
        let mut s = format!(
            "{}: {} images, channels ranked by {}, {} {} RSA(kept, full), random baseline of {} draws (seed {})\n",
            self.run.display(),
            self.images,
            self.rank.name(),
            self.measure.name(),
            self.method.name(),
            self.random_repeats,
            self.seed
        );
        s.push_str(&format!(
            "  {:width$}  {:>5}  {:>5}  {:>13}  {:>13}  {:>13}  {:>13}  {:>13}  {:>13}  {:>9}\n",
            "tap",
            "C",
            "dead",
            "pooled@20%",
            "pooled@50%",
            "flat@20%",
            "flat@50%",
            "R2drop@20%",
            "R2drop@50%",
            "prunable"
        ));
        let level = |t: &TapPrune, p: usize| t.levels.iter().find(|l| l.percent == p).cloned();
        for t in &self.taps {
            let (a, b) = (level(t, 20), level(t, 50));
            let cell = |l: &Option<Level>, which: u8| match l {
                None => "-".to_string(),
                Some(l) => match which {
                    0 => pair(l.pooled_rsa, l.pooled_random.mean),
                    1 => pair(l.flat_rsa, l.flat_random.as_ref().and_then(|s| s.mean)),
                    _ => pair(l.variance_explained, l.variance_explained_random.mean),
                },
            };
            let prunable = format!(
                "{}/{}",
                t.prunable_percent_pooled
                    .map_or("-".into(), |p| format!("{p}%")),
                t.prunable_percent_flat
                    .map_or("-".into(), |p| format!("{p}%"))
            );
            s.push_str(&format!(
                "  {:width$}  {:>5}  {:>5}  {:>13}  {:>13}  {:>13}  {:>13}  {:>13}  {:>13}  {:>9}\n",
                t.tap,
                t.channels,
                t.never_firing,
                cell(&a, 0),
                cell(&b, 0),
                cell(&a, 1),
                cell(&b, 1),
                cell(&a, 2),
                cell(&b, 2),
                prunable
            ));
        }
        s.push_str(&format!(
            "  cells: ranked/random mean; prunable: largest % dropped with RSA >= {} (pooled/flat)\n",
            self.taps.first().map_or(0.95, |t| t.threshold)
        ));
        for (t, e) in &self.failed {
            s.push_str(&format!("  {t}: not analysed: {e}\n"));
        }
        if let Some(first) = self.files.first() {
            s.push_str(&format!(
                "  -> {} ({} files)\n",
                self.run
                    .join(first)
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display(),
                self.files.len()
            ));
        }
        s
    }
}
