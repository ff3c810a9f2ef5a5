//! `sparsescope rsa`: representational similarity between the taps of a finished run.
//!
//! Three comparisons, all over the RDMs a run wrote (`OUT/taps/<tap>/rdm_<features>_<measure>
//! .npy`, in the order of `OUT/images.txt`):
//! - within one run: the layer-by-layer RSA matrix [T, T] (symmetric, 1 on the diagonal);
//! - between two runs on the same images (two models): the cross matrix [T1, T2]; the two
//!   `images.txt` must be equal line by line;
//! - each tap against an external RDM (human similarity judgments, a model's RDM from another
//!   tool): .npy or .csv, validated (square, one row per image, finite, symmetric, zero
//!   diagonal) and, when it names its images, put into the run's image order; with a seeded
//!   permutation p-value and an optional bootstrap confidence interval per tap.
//!
//! The statistics are those of `analysis::rsa` (Spearman with average ranks, Pearson, Kendall
//! tau-a over the upper triangle). Memory: an RDM's upper triangle, prepared once (ranked and
//! standardised), is N(N-1)/2 f64; the matrices hold at most `PREPARED_BUDGET` bytes of prepared
//! triangles at a time and work through blocks of taps beyond that, so N in the thousands over
//! dozens of taps never holds every RDM at once.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::rsa::{BootstrapCi, Method, Prepared, bootstrap_ci, permutation_test};
use crate::error::{Error, Result};
use crate::model::TapInfo;
use crate::model::select::select_taps;
use crate::npy::{read_header, read_npy, write_npy};
use crate::outdir::RunDir;
use crate::rdm::{Gram, Measure, Rdm};

/// Bytes of prepared upper triangles held at once by the RSA matrices.
const PREPARED_BUDGET: u64 = 2 << 30;

/// Which features an RDM was computed from (DESIGN.md "Features for RDMs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The channel vector averaged over positions, [N, C].
    Pooled,
    /// The whole [P*C] activation per image.
    Flat,
}

impl Features {
    pub fn name(self) -> &'static str {
        match self {
            Features::Pooled => "pooled",
            Features::Flat => "flat",
        }
    }

    pub fn parse(s: &str) -> Result<Features> {
        match s.to_ascii_lowercase().as_str() {
            "pooled" => Ok(Features::Pooled),
            "flat" => Ok(Features::Flat),
            other => Err(Error::Usage(format!(
                "unknown features '{other}': expected pooled or flat"
            ))),
        }
    }
}

/// What the `rsa` command compares the taps of OUT with.
#[derive(Debug, Clone)]
pub enum Comparison {
    /// Every tap of OUT with every other.
    Within,
    /// Every tap of OUT with every tap of another run on the same images.
    Cross(PathBuf),
    /// Every tap of OUT with an external RDM (.npy or .csv).
    Target(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RsaOptions {
    pub features: Features,
    pub measure: Measure,
    pub method: Method,
    /// Tap names or globs (all taps when empty); with two runs, applied to both.
    pub taps: Vec<String>,
    /// Permutations of the test against a target (0: no p-values).
    pub permutations: usize,
    /// Bootstrap samples of the confidence interval against a target (0: none).
    pub bootstrap: usize,
    /// Level of the bootstrap interval, e.g. 0.95.
    pub level: f64,
    pub seed: u64,
    /// One image name per line, in the order of the target's rows (for targets that do not
    /// name their images themselves).
    pub target_images: Option<PathBuf>,
}

impl Default for RsaOptions {
    fn default() -> Self {
        RsaOptions {
            features: Features::Pooled,
            measure: Measure::Correlation,
            method: Method::Spearman,
            taps: Vec::new(),
            permutations: 1000,
            bootstrap: 0,
            level: 0.95,
            seed: 0,
            target_images: None,
        }
    }
}

/// One tap against the target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    pub tap: String,
    pub rsa: f64,
    /// One-sided permutation p-value, (1 + #{permuted >= observed}) / (1 + permutations).
    pub p_value: Option<f64>,
    pub exceed: Option<usize>,
    pub ci: Option<BootstrapCi>,
}

/// Everything the command computed, as printed with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RsaReport {
    /// "within", "cross" or "target".
    pub kind: &'static str,
    pub run: PathBuf,
    pub other_run: Option<PathBuf>,
    pub target: Option<PathBuf>,
    pub features: Features,
    pub measure: Measure,
    pub method: Method,
    pub images: usize,
    /// Taps of OUT (rows).
    pub taps: Vec<String>,
    /// Taps of OUT2 (columns of the cross matrix).
    pub other_taps: Vec<String>,
    /// Row-major [taps, taps] (within) or [taps, other_taps] (cross); empty for a target.
    pub matrix: Vec<Vec<f64>>,
    pub target_rows: Vec<TargetRow>,
    pub permutations: usize,
    pub bootstrap: usize,
    pub seed: u64,
    /// How each tap's flat RDM was computed (exact, or the sketch and its expected error), for
    /// flat features.
    pub flat_modes: Vec<serde_json::Value>,
    /// Files written, relative to OUT.
    pub files: Vec<PathBuf>,
}

/// Write `value` as pretty JSON to `path` through a temporary name (an interrupted command
/// leaves any earlier file whole).
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::file(path, format!("cannot serialise: {e}")))?;
    std::fs::write(&tmp, text).map_err(|e| Error::file(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::file(path, format!("cannot rename into place: {e}")))
}

/// The taps of `run` chosen by `patterns` (all when empty), in forward order.
pub fn chosen_taps(run: &RunDir, patterns: &[String]) -> Result<Vec<TapInfo>> {
    let all = run.taps()?;
    if all.is_empty() {
        return Err(Error::file(
            run.path.join("summary.json"),
            "the run has no taps",
        ));
    }
    Ok(select_taps(&all, patterns)?
        .into_iter()
        .map(|i| all[i].clone())
        .collect())
}

/// An N x N f64 RDM written by `run`, checked against the run's image count.
fn read_run_rdm(path: &Path, n: usize) -> Result<Rdm> {
    let (shape, data) = read_npy::<f64>(path)?;
    if shape != [n, n] {
        return Err(Error::file(
            path,
            format!("shape {shape:?}, but the run has {n} images (expected [{n}, {n}])"),
        ));
    }
    Rdm::from_full(&path.display().to_string(), n, data)
}

/// The RDM of `tap` in `run`. Pooled RDMs of a measure the run did not write are computed from
/// `pooled.npy` (exact, f64); flat ones need the run's file.
pub fn tap_rdm(run: &RunDir, tap: &str, features: Features, measure: Measure) -> Result<Rdm> {
    let n = run.n_images();
    let file = format!("rdm_{}_{}", features.name(), measure.name());
    let path = run.array_path(tap, &file);
    if path.exists() {
        return read_run_rdm(&path, n);
    }
    match features {
        Features::Pooled => {
            let pooled = run.array_path(tap, "pooled");
            let (shape, x) = read_npy::<f32>(&pooled)?;
            if shape.len() != 2 || shape[0] != n {
                return Err(Error::file(
                    &pooled,
                    format!("shape {shape:?}, expected [{n}, C] for the run's {n} images"),
                ));
            }
            Ok(Gram::from_features(&x, n, shape[1])?.rdm(measure))
        }
        Features::Flat => Err(Error::file(
            &path,
            format!(
                "missing: the run did not compute flat {} RDMs; rerun `sparsescope run --rdm {}`",
                measure.name(),
                measure.name()
            ),
        )),
    }
}

/// What one side of a comparison holds: a run and its chosen taps.
struct Side<'a> {
    run: &'a RunDir,
    taps: Vec<TapInfo>,
}

impl Side<'_> {
    /// Load and prepare the RDMs of taps `range`.
    fn prepare(
        &self,
        range: std::ops::Range<usize>,
        options: &RsaOptions,
    ) -> Result<Vec<Prepared>> {
        self.taps[range]
            .iter()
            .map(|t| {
                let rdm = tap_rdm(self.run, &t.name, options.features, options.measure)?;
                Prepared::new(
                    &format!(
                        "RSA with the {} {} RDM of tap '{}' in {}",
                        options.features.name(),
                        options.measure.name(),
                        t.name,
                        self.run.path.display()
                    ),
                    &rdm,
                    options.method,
                )
            })
            .collect()
    }
}

/// RSA of every tap of `a` with every tap of `b` (or of `a` with itself when `b` is `None`),
/// row-major, holding at most `budget` bytes of prepared triangles.
fn rsa_grid(a: &Side, b: Option<&Side>, options: &RsaOptions, budget: u64) -> Result<Vec<f64>> {
    let n = a.run.n_images();
    let per = (n * n.saturating_sub(1) / 2).max(1) as u64 * 8;
    let block = ((budget / (2 * per)) as usize).max(1);
    let ta = a.taps.len();
    let (tb, symmetric) = match b {
        Some(b) => (b.taps.len(), false),
        None => (ta, true),
    };
    let mut out = vec![1.0; ta * tb];
    for i0 in (0..ta).step_by(block) {
        let i1 = (i0 + block).min(ta);
        let pa = a.prepare(i0..i1, options)?;
        let j_start = if symmetric { i0 } else { 0 };
        for j0 in (j_start..tb).step_by(block) {
            let j1 = (j0 + block).min(tb);
            let owned;
            let pb: &[Prepared] = if symmetric && j0 == i0 {
                &pa
            } else {
                owned = b.unwrap_or(a).prepare(j0..j1, options)?;
                &owned
            };
            for i in i0..i1 {
                for j in j0..j1 {
                    if symmetric && j <= i {
                        continue;
                    }
                    let v = pa[i - i0].compare(&pb[j - j0])?;
                    out[i * tb + j] = v;
                    if symmetric {
                        out[j * tb + i] = v;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The first line where two image lists differ, as an error naming both runs.
pub fn check_same_images(a: &RunDir, b: &RunDir) -> Result<()> {
    let line = |img: &(String, Option<String>)| match &img.1 {
        Some(l) => format!("{}\t{l}", img.0),
        None => img.0.clone(),
    };
    let (la, lb) = (a.path.join("images.txt"), b.path.join("images.txt"));
    for (k, (x, y)) in a.images.iter().zip(&b.images).enumerate() {
        if x != y {
            return Err(Error::Usage(format!(
                "{} and {} differ at line {}: '{}' vs '{}'; RSA between runs needs the same images in the same order",
                la.display(),
                lb.display(),
                k + 1,
                line(x),
                line(y)
            )));
        }
    }
    if a.images.len() != b.images.len() {
        let (longer, k) = if a.images.len() > b.images.len() {
            (&a.images, b.images.len())
        } else {
            (&b.images, a.images.len())
        };
        return Err(Error::Usage(format!(
            "{} lists {} images and {} lists {} (first unmatched, line {}: '{}'); RSA between runs needs the same images in the same order",
            la.display(),
            a.images.len(),
            lb.display(),
            b.images.len(),
            k + 1,
            line(&longer[k])
        )));
    }
    Ok(())
}

fn need_three(run: &RunDir) -> Result<()> {
    let n = run.n_images();
    if n < 3 {
        return Err(Error::Undefined {
            what: format!("RSA for the run at {}", run.path.display()),
            why: format!(
                "it has {n} image(s), so {} dissimilarities; a correlation of RDMs needs 3 images or more",
                n * n.saturating_sub(1) / 2
            ),
        });
    }
    Ok(())
}

/// A name safe for a file name: letters, digits, '.', '-' and '_' kept, the rest '_'.
fn file_safe(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() { "run".into() } else { t }
}

fn flat_modes(run: &RunDir, taps: &[TapInfo]) -> Vec<serde_json::Value> {
    taps.iter()
        .map(|t| {
            let mode = run
                .tap_summary(&t.name)
                .map(|s| s["rdm_flat"].clone())
                .unwrap_or(serde_json::Value::Null);
            serde_json::json!({"tap": t.name, "rdm_flat": mode})
        })
        .collect()
}

/// Run the `rsa` command on the run at `out`: compute, write under `out/rsa/`, and return the
/// report.
pub fn rsa_command(out: &Path, comparison: &Comparison, options: &RsaOptions) -> Result<RsaReport> {
    let run = RunDir::open(out)?;
    need_three(&run)?;
    let taps = chosen_taps(&run, &options.taps)?;
    let n = run.n_images();
    let dir = out.join("rsa");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::file(&dir, format!("cannot create the output folder: {e}")))?;
    let suffix = format!(
        "{}_{}_{}",
        options.features.name(),
        options.measure.name(),
        options.method.name()
    );
    let mut report = RsaReport {
        kind: "within",
        run: out.to_path_buf(),
        other_run: None,
        target: None,
        features: options.features,
        measure: options.measure,
        method: options.method,
        images: n,
        taps: taps.iter().map(|t| t.name.clone()).collect(),
        other_taps: Vec::new(),
        matrix: Vec::new(),
        target_rows: Vec::new(),
        permutations: 0,
        bootstrap: 0,
        seed: options.seed,
        flat_modes: Vec::new(),
        files: Vec::new(),
    };
    if options.features == Features::Flat {
        report.flat_modes = flat_modes(&run, &taps);
    }
    let side = Side { run: &run, taps };
    let stem = match comparison {
        Comparison::Within => {
            let m = rsa_grid(&side, None, options, PREPARED_BUDGET)?;
            let t = side.taps.len();
            report.matrix = m.chunks(t).map(<[f64]>::to_vec).collect();
            let stem = format!("rsa_{suffix}");
            write_npy(dir.join(format!("{stem}.npy")), &[t, t], &m)?;
            stem
        }
        Comparison::Cross(other) => {
            let run2 = RunDir::open(other)?;
            check_same_images(&run, &run2)?;
            let taps2 = chosen_taps(&run2, &options.taps)?;
            report.kind = "cross";
            report.other_run = Some(other.clone());
            report.other_taps = taps2.iter().map(|t| t.name.clone()).collect();
            if options.features == Features::Flat {
                report.flat_modes.extend(flat_modes(&run2, &taps2));
            }
            let side2 = Side {
                run: &run2,
                taps: taps2,
            };
            let m = rsa_grid(&side, Some(&side2), options, PREPARED_BUDGET)?;
            let (t1, t2) = (side.taps.len(), side2.taps.len());
            report.matrix = m.chunks(t2).map(<[f64]>::to_vec).collect();
            let name = other
                .canonicalize()
                .unwrap_or_else(|_| other.clone())
                .file_name()
                .map(|s| file_safe(&s.to_string_lossy()))
                .unwrap_or_else(|| "run".into());
            let stem = format!("cross_{name}_{suffix}");
            write_npy(dir.join(format!("{stem}.npy")), &[t1, t2], &m)?;
            stem
        }
        Comparison::Target(path) => {
            let target = load_target(path, &run, options.target_images.as_deref())?;
            report.kind = "target";
            report.target = Some(path.clone());
            report.permutations = options.permutations;
            report.bootstrap = options.bootstrap;
            let what = format!("RSA with the target RDM {}", path.display());
            let prepared_target = Prepared::new(&what, &target, options.method)?;
            let mut values = Vec::with_capacity(side.taps.len());
            for t in &side.taps {
                let rdm = tap_rdm(&run, &t.name, options.features, options.measure)?;
                let prepared = Prepared::new(
                    &format!(
                        "RSA with the {} {} RDM of tap '{}'",
                        options.features.name(),
                        options.measure.name(),
                        t.name
                    ),
                    &rdm,
                    options.method,
                )?;
                let observed = prepared.compare(&prepared_target)?;
                let (p_value, exceed) = if options.permutations > 0 {
                    let test = permutation_test(
                        &rdm,
                        &target,
                        options.method,
                        options.permutations,
                        options.seed,
                    )?;
                    (Some(test.p_value), Some(test.exceed))
                } else {
                    (None, None)
                };
                let ci = if options.bootstrap > 0 {
                    Some(bootstrap_ci(
                        &rdm,
                        &target,
                        options.method,
                        options.bootstrap,
                        options.level,
                        options.seed,
                    )?)
                } else {
                    None
                };
                values.push(observed);
                report.target_rows.push(TargetRow {
                    tap: t.name.clone(),
                    rsa: observed,
                    p_value,
                    exceed,
                    ci,
                });
            }
            let target_name = path
                .file_stem()
                .map(|s| file_safe(&s.to_string_lossy()))
                .unwrap_or_else(|| "target".into());
            let stem = format!("target_{target_name}_{suffix}");
            write_npy(dir.join(format!("{stem}.npy")), &[values.len()], &values)?;
            stem
        }
    };
    report.files = vec![
        PathBuf::from(format!("rsa/{stem}.npy")),
        PathBuf::from(format!("rsa/{stem}.json")),
    ];
    write_json_atomic(&dir.join(format!("{stem}.json")), &report)?;
    Ok(report)
}

impl RsaReport {
    /// A table for the terminal: the full matrix for up to 10 taps, else per tap its RSA with
    /// the previous, the first and the last tap (within), or its best match (cross); per tap
    /// the RSA, p-value and interval (target).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let width = self
            .taps
            .iter()
            .chain(&self.other_taps)
            .map(|t| t.len())
            .max()
            .unwrap_or(3)
            .max(3);
        let what = format!(
            "{} {} RDMs, {} RSA, {} images",
            self.features.name(),
            self.measure.name(),
            self.method.name(),
            self.images
        );
        match self.kind {
            "within" => {
                s.push_str(&format!("{}: {what}\n", self.run.display()));
                let t = self.taps.len();
                if t <= 10 {
                    let label = width + 4;
                    s.push_str(&format!("  {:label$}", ""));
                    for j in 0..t {
                        s.push_str(&format!(" {:>6}", format!("[{j}]")));
                    }
                    s.push('\n');
                    for (i, row) in self.matrix.iter().enumerate() {
                        s.push_str(&format!("  {:label$}", format!("[{i}] {}", self.taps[i])));
                        for v in row {
                            s.push_str(&format!(" {v:>6.3}"));
                        }
                        s.push('\n');
                    }
                } else {
                    s.push_str(&format!(
                        "  {:width$}  {:>9}  {:>9}  {:>9}\n",
                        "tap", "vs prev.", "vs first", "vs last"
                    ));
                    for i in 0..t {
                        let prev = if i == 0 {
                            "-".to_string()
                        } else {
                            format!("{:.3}", self.matrix[i][i - 1])
                        };
                        s.push_str(&format!(
                            "  {:width$}  {:>9}  {:>9.3}  {:>9.3}\n",
                            self.taps[i],
                            prev,
                            self.matrix[i][0],
                            self.matrix[i][t - 1]
                        ));
                    }
                }
            }
            "cross" => {
                s.push_str(&format!(
                    "{} vs {}: {what}\n",
                    self.run.display(),
                    self.other_run
                        .as_deref()
                        .unwrap_or(Path::new("?"))
                        .display()
                ));
                s.push_str(&format!(
                    "  {:width$}  {:width$}  {:>7}\n",
                    "tap", "best match", "RSA"
                ));
                for (i, row) in self.matrix.iter().enumerate() {
                    let best = row
                        .iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
                        .map(|(j, v)| (self.other_taps[j].as_str(), *v));
                    if let Some((name, v)) = best {
                        s.push_str(&format!(
                            "  {:width$}  {name:width$}  {v:>7.3}\n",
                            self.taps[i]
                        ));
                    }
                }
            }
            _ => {
                s.push_str(&format!(
                    "{} vs target {}: {what}\n",
                    self.run.display(),
                    self.target.as_deref().unwrap_or(Path::new("?")).display()
                ));
                s.push_str(&format!(
                    "  {:width$}  {:>7}  {:>8}  {}\n",
                    "tap", "RSA", "p", "interval"
                ));
                for r in &self.target_rows {
                    let p = r.p_value.map_or("-".into(), |p| format!("{p:.4}"));
                    let ci = r.ci.as_ref().map_or("-".into(), |c| {
                        format!("[{:.3}, {:.3}] ({:.0}%)", c.low, c.high, 100.0 * c.level)
                    });
                    s.push_str(&format!(
                        "  {:width$}  {:>7.3}  {:>8}  {ci}\n",
                        r.tap, r.rsa, p
                    ));
                }
                if self.permutations > 0 {
                    s.push_str(&format!(
                        "  p: one-sided, {} permutations of the target's images (seed {})\n",
                        self.permutations, self.seed
                    ));
                }
            }
        }
        for f in &self.files {
            s.push_str(&format!("  -> {}\n", self.run.join(f).display()));
        }
        s
    }
}

// ----- External RDMs -----

/// A parsed external matrix: values row-major, and the image names it gives, if any.
struct ExternalMatrix {
    rows: usize,
    cols: usize,
    values: Vec<f64>,
    names: Option<Vec<String>>,
}

fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        // Spelled-out non-finite values parse, so that they are refused with their position.
        "nan" | "inf" | "-inf" | "+inf" | "infinity" | "-infinity" => {
            t.parse().ok().or(Some(f64::NAN))
        }
        _ => t.parse().ok(),
    }
}

fn unquote(s: &str) -> String {
    let t = s.trim();
    t.strip_prefix('"')
        .and_then(|u| u.strip_suffix('"'))
        .unwrap_or(t)
        .to_string()
}

/// A delimited text matrix: fields separated by commas, tabs, semicolons or spaces (the first
/// of these found in the first line); an optional first row of image names (a header) and an
/// optional first column of image names; lines starting with '#' are comments.
fn parse_csv(path: &Path) -> Result<ExternalMatrix> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(k, l)| (k + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Err(Error::file(path, "no rows: the file is empty"));
    };
    let delimiter: Option<char> = [',', '\t', ';'].into_iter().find(|&d| first.contains(d));
    let split = |l: &str| -> Vec<String> {
        match delimiter {
            Some(d) => l.split(d).map(unquote).collect(),
            None => l.split_whitespace().map(unquote).collect(),
        }
    };
    let mut rows: Vec<(usize, Vec<String>)> = lines.iter().map(|&(k, l)| (k, split(l))).collect();
    // A header: some field of the first row that is not a number (an empty corner is allowed).
    let header = rows[0]
        .1
        .iter()
        .any(|f| !f.is_empty() && parse_number(f).is_none());
    let header_names: Option<Vec<String>> = if header {
        let (_, h) = rows.remove(0);
        Some(h)
    } else {
        None
    };
    if rows.is_empty() {
        return Err(Error::file(path, "no rows of numbers after the header"));
    }
    // Row labels: the first field of the first data row is not a number.
    let labelled = parse_number(&rows[0].1[0]).is_none();
    let mut row_names = Vec::new();
    let mut values = Vec::new();
    let n = rows.len();
    let mut cols = None;
    for (line, fields) in &rows {
        let fields: &[String] = if labelled {
            row_names.push(fields[0].clone());
            &fields[1..]
        } else {
            fields
        };
        match cols {
            None => cols = Some(fields.len()),
            Some(c) if c != fields.len() => {
                return Err(Error::file(
                    path,
                    format!(
                        "line {line} has {} values, the first row has {c}: not a matrix",
                        fields.len()
                    ),
                ));
            }
            _ => {}
        }
        for (k, f) in fields.iter().enumerate() {
            let v = parse_number(f).ok_or_else(|| {
                Error::file(
                    path,
                    format!("line {line}, value {}: '{f}' is not a number", k + 1),
                )
            })?;
            values.push(v);
        }
    }
    let cols = cols.unwrap_or(0);
    let names = match (header_names, labelled) {
        (Some(h), labelled) => {
            // With row labels the header starts with a corner cell.
            let h: Vec<String> = if labelled || h.len() == cols + 1 {
                h[1..].to_vec()
            } else {
                h
            };
            if h.len() != cols {
                return Err(Error::file(
                    path,
                    format!(
                        "the header names {} images but rows hold {cols} values",
                        h.len()
                    ),
                ));
            }
            if labelled && h != row_names {
                let k = h
                    .iter()
                    .zip(&row_names)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(Error::file(
                    path,
                    format!(
                        "the header and the row labels name different images at position {}: '{}' vs '{}'",
                        k + 1,
                        h.get(k).map_or("", String::as_str),
                        row_names.get(k).map_or("", String::as_str)
                    ),
                ));
            }
            Some(h)
        }
        (None, true) => Some(row_names),
        (None, false) => None,
    };
    Ok(ExternalMatrix {
        rows: n,
        cols,
        values,
        names,
    })
}

fn parse_npy_matrix(path: &Path) -> Result<ExternalMatrix> {
    let header = read_header(path)?;
    let kind = header.descr.trim_start_matches(['<', '>', '|', '=']);
    let (shape, values) = match kind {
        "f8" => read_npy::<f64>(path)?,
        "f4" => {
            let (s, v) = read_npy::<f32>(path)?;
            (s, v.into_iter().map(f64::from).collect())
        }
        other => {
            return Err(Error::file(
                path,
                format!("dtype '{other}': an RDM must be float64 or float32"),
            ));
        }
    };
    if shape.len() != 2 {
        return Err(Error::file(
            path,
            format!("shape {shape:?}: an RDM is a 2-d N x N matrix"),
        ));
    }
    Ok(ExternalMatrix {
        rows: shape[0],
        cols: shape[1],
        values,
        names: None,
    })
}

/// For each image of the run (in order), the index of the target's row that names it. A name
/// matches an image by its path as written in images.txt, else by file name, else by file stem
/// (each unique among the run's images).
fn match_names(target: &Path, names: &[String], run: &RunDir) -> Result<Vec<usize>> {
    let n = run.n_images();
    let images: Vec<&str> = run.images.iter().map(|(p, _)| p.as_str()).collect();
    let file_name = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
    };
    let file_stem = |p: &str| {
        Path::new(p)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
    };
    let unique = |key: &dyn Fn(&str) -> Option<String>, name: &str| -> Option<usize> {
        let hits: Vec<usize> = (0..n)
            .filter(|&i| key(images[i]).as_deref() == Some(name))
            .collect();
        (hits.len() == 1).then(|| hits[0])
    };
    let mut row_of = vec![usize::MAX; n];
    for (row, name) in names.iter().enumerate() {
        let image = images
            .iter()
            .position(|p| p == name)
            .or_else(|| unique(&file_name, name))
            .or_else(|| unique(&file_stem, name))
            .ok_or_else(|| {
                Error::file(
                    target,
                    format!(
                        "image name '{name}' (row {}) matches no image of {} (by path, file name or stem)",
                        row + 1,
                        run.path.join("images.txt").display()
                    ),
                )
            })?;
        if row_of[image] != usize::MAX {
            return Err(Error::file(
                target,
                format!(
                    "rows {} and {} both name image '{}'",
                    row_of[image] + 1,
                    row + 1,
                    images[image]
                ),
            ));
        }
        row_of[image] = row;
    }
    Ok(row_of)
}

/// Load an external RDM (.npy float64/float32 or delimited text) for the images of `run`:
/// square, one row per image, finite, symmetric (to 1e-6 relative), zero diagonal. When the
/// file names its images (a CSV header or first column) or `names` lists them, the matrix is
/// reordered into the run's image order; otherwise its order is taken to be images.txt's.
pub fn load_target(path: &Path, run: &RunDir, names: Option<&Path>) -> Result<Rdm> {
    let is_npy = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let m = if is_npy {
        parse_npy_matrix(path)?
    } else {
        parse_csv(path)?
    };
    let n = run.n_images();
    if m.rows != m.cols {
        return Err(Error::file(
            path,
            format!(
                "a {} x {} matrix; an RDM is square (N x N, one row and column per image)",
                m.rows, m.cols
            ),
        ));
    }
    if m.rows != n {
        return Err(Error::file(
            path,
            format!(
                "a {0} x {0} RDM, but the run has {n} images ({1}): one row and column per image, in its order",
                m.rows,
                run.path.join("images.txt").display()
            ),
        ));
    }
    if let Some(k) = m.values.iter().position(|v| !v.is_finite()) {
        return Err(Error::file(
            path,
            format!(
                "entry ({}, {}) is {}; an RDM must be finite",
                k / n,
                k % n,
                m.values[k]
            ),
        ));
    }
    let listed: Option<Vec<String>> = match names {
        Some(list) => {
            let text = std::fs::read_to_string(list)
                .map_err(|e| Error::file(list, format!("cannot read: {e}")))?;
            let v: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| l.split('\t').next().unwrap_or(l).to_string())
                .collect();
            if v.len() != n {
                return Err(Error::file(
                    list,
                    format!("lists {} image names, the target has {n} rows", v.len()),
                ));
            }
            Some(v)
        }
        None => None,
    };
    let names = match (m.names, listed) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(format!(
                "{} names its images already; --target-images is for targets that do not",
                path.display()
            )));
        }
        (a, b) => a.or(b),
    };
    let what = path.display().to_string();
    let rdm = Rdm::from_full(&what, n, m.values)?;
    Ok(match names {
        Some(names) => rdm.select(&match_names(path, &names, run)?),
        None => rdm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::SplitMix64;

    /// A run folder of `taps` random taps over `n` images (pooled features only; their RDMs are
    /// computed by `tap_rdm`).
    fn fake_run(name: &str, n: usize, taps: usize, seed: u64) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sparsescope-rsa-unit-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lines: String = (0..n).map(|i| format!("/x/{i}.png\n")).collect();
        std::fs::write(dir.join("images.txt"), lines).unwrap();
        let mut g = SplitMix64::new(seed);
        let mut entries = Vec::new();
        for t in 0..taps {
            let c = 3 + t;
            let d = dir.join("taps").join(format!("t{t}"));
            std::fs::create_dir_all(&d).unwrap();
            let x: Vec<f32> = (0..n * c).map(|_| (g.next_u64() >> 40) as f32).collect();
            write_npy(d.join("pooled.npy"), &[n, c], &x).unwrap();
            entries.push(
                serde_json::json!({"tap": {"name": format!("t{t}"), "kind": "block",
                "depth": t, "positions": 1, "channels": c}}),
            );
        }
        let summary = serde_json::json!({"schema_version": crate::run::SCHEMA_VERSION,
            "taps": entries});
        std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
        dir
    }

    #[test]
    fn blocked_matrices_equal_unblocked_ones() {
        let (a, b) = (fake_run("a", 9, 5, 1), fake_run("b", 9, 4, 2));
        let (ra, rb) = (RunDir::open(&a).unwrap(), RunDir::open(&b).unwrap());
        let options = RsaOptions::default();
        let sa = Side {
            run: &ra,
            taps: chosen_taps(&ra, &[]).unwrap(),
        };
        let sb = Side {
            run: &rb,
            taps: chosen_taps(&rb, &[]).unwrap(),
        };
        // A budget of one byte forces blocks of one tap; 2 GiB holds everything at once.
        for budget in [1u64, 2 * 36 * 8 * 2 + 1] {
            let within = rsa_grid(&sa, None, &options, budget).unwrap();
            assert_eq!(within, rsa_grid(&sa, None, &options, 1 << 31).unwrap());
            let cross = rsa_grid(&sa, Some(&sb), &options, budget).unwrap();
            assert_eq!(cross, rsa_grid(&sa, Some(&sb), &options, 1 << 31).unwrap());
            assert_eq!(cross.len(), 20);
            for i in 0..5 {
                assert_eq!(within[i * 5 + i], 1.0);
                for j in 0..5 {
                    assert_eq!(within[i * 5 + j], within[j * 5 + i]);
                }
            }
        }
    }
}
