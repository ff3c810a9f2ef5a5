//! `sparsescope nullcode OUT`: the sparse null code (Robinson, Drenkow, Conwell, Bonner 2024)
//! of a finished run, as ../shared/DESIGN.md defines it.
//!
//! Per tap, the dominant pattern p is the per-channel majority of the binary code
//! (p_c = 1 iff the run's firing_rate[c] > 0.5). The model runs again over the run's images;
//! at each chosen tap the `nullcode_probe` kernel computes, per token x (one position's [C]
//! row), Hoyer(x) and cos(x, p), and only those [n, P] values come back per batch. A token is
//! null when cos >= `cos_min` and Hoyer >= `hoyer_min`. Written:
//! - `taps/<tap>/hoyer.npy`, `taps/<tap>/nullcode_cos.npy`: f32 [N, P], streamed to disk;
//! - `nullcode.json`: per tap the null share, its spread over images, the Hoyer and cosine
//!   distributions (fixed-edge histograms), the token grid for maps; per kind of tap the
//!   emergence depth: the depth whose null share rises most over the depth before it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analysis::prune_pass::rerun_source;
use crate::analysis::rsa_report::{chosen_taps, write_json_atomic};
use crate::error::{Error, Result};
use crate::extract::{Readback, read_floats, readback};
use crate::gpu::ops::probe::nullcode_probe;
use crate::gpu::{Gpu, GpuOptions, Step, Tensor};
use crate::model::{ModelOptions, TapInfo, TapKind};
use crate::npy::NpyWriter;
use crate::outdir::RunDir;

/// Default thresholds of a null token (see the README, "nullcode", for how they were chosen).
pub const DEFAULT_COS_MIN: f64 = 0.5;
pub const DEFAULT_HOYER_MIN: f64 = 0.5;
/// Bins of the distributions in nullcode.json: Hoyer on [0, 1], cosine on [-1, 1].
pub const HOYER_BINS: usize = 20;
pub const COS_BINS: usize = 40;

#[derive(Debug, Clone)]
pub struct NullcodeOptions {
    /// Tap names or globs; empty: every tap of the run.
    pub taps: Vec<String>,
    pub cos_min: f64,
    pub hoyer_min: f64,
    pub batch: usize,
    /// The checkpoint, when not at the path the run recorded.
    pub model: Option<PathBuf>,
    pub model_options: ModelOptions,
    pub gpu: GpuOptions,
    pub threads: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub cos_min: f64,
    pub hoyer_min: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Hist {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub mean: f64,
    pub hist: Hist,
}

#[derive(Debug, Clone, Serialize)]
pub struct TapFiles {
    pub hoyer: String,
    pub cos: String,
}

/// One tap's entry of nullcode.json.
#[derive(Debug, Clone, Serialize)]
pub struct TapNullcode {
    pub name: String,
    pub kind: TapKind,
    pub depth: usize,
    pub positions: usize,
    pub channels: usize,
    /// Rows x columns of the spatial tokens (ViT patches, CNN pixels), row-major after the
    /// prefix tokens.
    pub grid: [usize; 2],
    /// Tokens before the grid: a ViT's CLS (and register) tokens; 0 for a CNN.
    pub prefix_tokens: usize,
    /// Channels of the dominant pattern (firing_rate > 0.5).
    pub dominant_channels: usize,
    /// Null tokens / all N * P tokens.
    pub null_share: f64,
    /// The per-image null shares (std with divisor N).
    pub null_share_img: Spread,
    pub hoyer: Distribution,
    pub cos: Distribution,
    pub files: TapFiles,
}

/// Per kind of tap, where the null code appears.
#[derive(Debug, Clone, Serialize)]
pub struct Emergence {
    pub kind: TapKind,
    /// The last tap of that kind at the emergence depth; `None` when the kind has taps at
    /// fewer than two depths.
    pub tap: Option<String>,
    pub depth: Option<usize>,
    /// Null share at that depth minus at the depth before it (shares pooled over the kind's
    /// taps at one depth).
    pub rise: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NullcodeReport {
    pub schema: u32,
    pub tool_version: String,
    pub images: usize,
    pub thresholds: Thresholds,
    pub taps: Vec<TapNullcode>,
    pub emergence: Vec<Emergence>,
    pub seconds: f64,
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// The token layout of a tap of `positions` tokens for an input of `height` x `width`: CNN
/// taps are an h x w grid of the input's aspect ratio; ViT taps are prefix tokens (CLS,
/// registers) followed by a square grid of patches (inputs are square crops).
pub fn token_grid(
    positions: usize,
    (height, width): (usize, usize),
    vit: bool,
) -> (usize, [usize; 2]) {
    if vit {
        let side = ((positions.saturating_sub(1)) as f64).sqrt().floor() as usize;
        let side = (side..=side + 1)
            .rev()
            .find(|s| s * s < positions)
            .unwrap_or(side);
        return (positions - side * side, [side, side]);
    }
    // rows / cols = height / width, rows * cols = positions.
    let rows = ((positions as f64 * height as f64 / width as f64).sqrt()).round() as usize;
    match (rows.saturating_sub(1)..=rows + 1).find(|&r| r > 0 && positions.is_multiple_of(r)) {
        Some(r) => (0, [r, positions / r]),
        None => (0, [1, positions]),
    }
}

/// Streaming per-tap totals over the batches.
struct TapAccumulator {
    tokens: u64,
    null: u64,
    hoyer_sum: f64,
    cos_sum: f64,
    hoyer_counts: Vec<u64>,
    cos_counts: Vec<u64>,
    img_shares: Vec<f64>,
}

fn bin(v: f64, lo: f64, hi: f64, bins: usize) -> usize {
    let b = ((v - lo) / (hi - lo) * bins as f64).floor();
    (b.max(0.0) as usize).min(bins - 1)
}

impl TapAccumulator {
    fn new() -> TapAccumulator {
        TapAccumulator {
            tokens: 0,
            null: 0,
            hoyer_sum: 0.0,
            cos_sum: 0.0,
            hoyer_counts: vec![0; HOYER_BINS],
            cos_counts: vec![0; COS_BINS],
            img_shares: Vec::new(),
        }
    }

    fn add_image(&mut self, hoyer: &[f32], cos: &[f32], th: &Thresholds) {
        let mut null = 0u64;
        for (&h, &c) in hoyer.iter().zip(cos) {
            let (h, c) = (h as f64, c as f64);
            self.hoyer_sum += h;
            self.cos_sum += c;
            self.hoyer_counts[bin(h, 0.0, 1.0, HOYER_BINS)] += 1;
            self.cos_counts[bin(c, -1.0, 1.0, COS_BINS)] += 1;
            if c >= th.cos_min && h >= th.hoyer_min {
                null += 1;
            }
        }
        self.tokens += hoyer.len() as u64;
        self.null += null;
        self.img_shares
            .push(null as f64 / hoyer.len().max(1) as f64);
    }

    fn spread(&self) -> Spread {
        let n = self.img_shares.len().max(1) as f64;
        let mean = self.img_shares.iter().sum::<f64>() / n;
        let var = self
            .img_shares
            .iter()
            .map(|s| (s - mean).powi(2))
            .sum::<f64>()
            / n;
        Spread {
            mean,
            std: var.sqrt(),
            min: self
                .img_shares
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min),
            max: self
                .img_shares
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

fn edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    (0..=bins)
        .map(|i| lo + (hi - lo) * i as f64 / bins as f64)
        .collect()
}

/// Per kind, the depth whose pooled null share rises most over the previous depth of that
/// kind (the first such depth on ties).
pub fn emergence(taps: &[TapNullcode]) -> Vec<Emergence> {
    let mut out = Vec::new();
    for kind in [TapKind::Block, TapKind::Hidden, TapKind::Other] {
        // (depth, null tokens, tokens, last tap name) in depth order.
        let mut depths: Vec<(usize, f64, f64, String)> = Vec::new();
        for t in taps.iter().filter(|t| t.kind == kind) {
            // Every tap of a run covers the same images: pooling taps by their positions weights
            // them by token counts (the image count cancels).
            let tokens = t.positions as f64;
            let null = t.null_share * tokens;
            match depths.iter_mut().find(|d| d.0 == t.depth) {
                Some(d) => {
                    d.1 += null;
                    d.2 += tokens;
                    d.3 = t.name.clone();
                }
                None => depths.push((t.depth, null, tokens, t.name.clone())),
            }
        }
        if depths.is_empty() {
            continue;
        }
        depths.sort_by_key(|d| d.0);
        if depths.len() < 2 {
            out.push(Emergence {
                kind,
                tap: None,
                depth: None,
                rise: None,
                reason: Some(format!(
                    "taps of this kind at {} depth: a rise needs two",
                    depths.len()
                )),
            });
            continue;
        }
        let share = |d: &(usize, f64, f64, String)| d.1 / d.2.max(1.0);
        let mut best: Option<(usize, f64)> = None;
        for k in 1..depths.len() {
            let rise = share(&depths[k]) - share(&depths[k - 1]);
            if best.is_none_or(|(_, b)| rise > b) {
                best = Some((k, rise));
            }
        }
        let (k, rise) = best.expect("two depths or more");
        if rise <= 0.0 {
            out.push(Emergence {
                kind,
                tap: None,
                depth: None,
                rise: None,
                reason: Some("the null share never rises from one depth to the next".into()),
            });
            continue;
        }
        out.push(Emergence {
            kind,
            tap: Some(depths[k].3.clone()),
            depth: Some(depths[k].0),
            rise: Some(rise),
            reason: None,
        });
    }
    out
}

/// The GPU side of one tap: the pattern, per-batch outputs and their read-back buffers.
struct ProbeTap {
    info: TapInfo,
    model_tap: usize,
    ones: usize,
    pattern: Tensor,
    hoyer: Tensor,
    cos: Tensor,
    hoyer_back: Readback,
    cos_back: Readback,
}

/// Run `nullcode` on the run at `out`. `progress(images done)` follows the GPU pass.
pub fn nullcode_command(
    out: &Path,
    options: &NullcodeOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<NullcodeReport> {
    let started = std::time::Instant::now();
    let run = RunDir::open(out)?;
    let n = run.n_images();
    if n == 0 {
        return Err(Error::file(
            run.path.join("images.txt"),
            "the run has no images",
        ));
    }
    for (what, v) in [
        ("--cos-min", options.cos_min),
        ("--hoyer-min", options.hoyer_min),
    ] {
        if !v.is_finite() {
            return Err(Error::Usage(format!("{what} {v} is not a number")));
        }
    }
    let thresholds = Thresholds {
        cos_min: options.cos_min,
        hoyer_min: options.hoyer_min,
    };
    let taps = chosen_taps(&run, &options.taps)?;
    let mut patterns = Vec::with_capacity(taps.len());
    for t in &taps {
        let path = run.array_path(&t.name, "firing_rate");
        if !path.exists() {
            return Err(Error::file(
                &path,
                "missing: the dominant pattern needs the run's firing rates",
            ));
        }
        let (shape, rate) = run.array::<f64>(&t.name, "firing_rate")?;
        if shape != [t.channels] {
            return Err(Error::file(
                &path,
                format!(
                    "shape {shape:?}, but tap '{}' has {} channels",
                    t.name, t.channels
                ),
            ));
        }
        patterns.push(
            rate.iter()
                .map(|&r| if r > 0.5 { 1.0f32 } else { 0.0 })
                .collect::<Vec<f32>>(),
        );
    }

    let gpu = Gpu::new(&options.gpu)?;
    let model = super::open_run_model(
        &gpu,
        &run,
        options.model.as_deref(),
        &options.model_options,
        "pass --model",
    )?;
    let (h, w) = run.image_hw()?;
    let vit = matches!(model.arch(), "vit" | "dinov2");
    let model_taps = model.taps(h, w)?;
    let batch = options.batch.clamp(1, n);
    let forward = model.forward(&gpu, batch, h, w)?;

    let mut probes = Vec::with_capacity(taps.len());
    for (t, pattern) in taps.iter().zip(&patterns) {
        let model_tap = model_taps
            .iter()
            .position(|m| m.name == t.name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "tap '{}' of the run is not a tap of the model now: was the run made with \
                     another model?",
                    t.name
                ))
            })?;
        let m = &model_taps[model_tap];
        if (m.positions, m.channels) != (t.positions, t.channels) {
            return Err(Error::Usage(format!(
                "tap '{}' is [{}, {}] in the run but [{}, {}] in the model now: was the run \
                 made with another input size?",
                t.name, t.positions, t.channels, m.positions, m.channels
            )));
        }
        let rows = batch * t.positions;
        probes.push(ProbeTap {
            info: t.clone(),
            model_tap,
            ones: pattern.iter().filter(|&&v| v != 0.0).count(),
            pattern: gpu.upload("dominant pattern", &[t.channels], pattern)?,
            hoyer: gpu.zeros("token hoyer", &[rows])?,
            cos: gpu.zeros("token cos", &[rows])?,
            hoyer_back: readback(&gpu, rows),
            cos_back: readback(&gpu, rows),
        });
    }
    let mut hooks: Vec<Vec<Step>> = vec![Vec::new(); forward.taps.len()];
    for p in &probes {
        let rows = batch * p.info.positions;
        hooks[p.model_tap].push(Step::Kernel(nullcode_probe(
            &gpu,
            &forward.tensors[p.model_tap],
            &p.pattern,
            p.ones,
            rows,
            &p.hoyer,
            &p.cos,
        )?));
        for (src, back) in [(&p.hoyer, &p.hoyer_back), (&p.cos, &p.cos_back)] {
            hooks[p.model_tap].push(Step::Copy {
                src: src.clone(),
                dst: back.buffer.clone(),
                dst_offset: 0,
            });
        }
    }
    let plan = forward.plan.with_hooks(|i| Ok(hooks[i].clone()))?;

    let mut writers = Vec::with_capacity(probes.len());
    let mut files = Vec::new();
    for p in &probes {
        let shape = [n, p.info.positions];
        let hp = run.array_path(&p.info.name, "hoyer");
        let cp = run.array_path(&p.info.name, "nullcode_cos");
        writers.push((
            NpyWriter::<f32>::create(&hp, &shape)?,
            NpyWriter::<f32>::create(&cp, &shape)?,
        ));
        files.push(hp);
        files.push(cp);
    }
    let mut accs: Vec<TapAccumulator> = probes.iter().map(|_| TapAccumulator::new()).collect();
    let image_len = 3 * h * w;
    let mut seen = 0usize;
    for b in rerun_source(&run, &model.preprocess(), batch, options.threads)? {
        let b = b?;
        if let Some((path, why)) = b.skipped.first() {
            return Err(Error::file(
                path,
                format!(
                    "unreadable now ({why}), but the run read it; nullcode needs the same images"
                ),
            ));
        }
        let k = b.len();
        if k == 0 {
            continue;
        }
        let mut data = b.data;
        data.resize(batch * image_len, 0.0);
        gpu.write(&forward.input, &data);
        plan.run(&gpu)?;
        for ((p, acc), (hw, cw)) in probes.iter().zip(&mut accs).zip(&mut writers) {
            let len = k * p.info.positions;
            let hoyer = read_floats(&gpu, &p.hoyer_back, len)?;
            let cos = read_floats(&gpu, &p.cos_back, len)?;
            for i in 0..k {
                let r = i * p.info.positions..(i + 1) * p.info.positions;
                acc.add_image(&hoyer[r.clone()], &cos[r], &thresholds);
            }
            hw.append(&hoyer)?;
            cw.append(&cos)?;
        }
        seen += k;
        progress(seen);
    }
    if seen != n {
        return Err(Error::Usage(format!(
            "the second pass read {seen} images, the run has {n}"
        )));
    }
    for (hw, cw) in writers {
        hw.finish()?;
        cw.finish()?;
    }

    let entries: Vec<TapNullcode> = probes
        .iter()
        .zip(&accs)
        .map(|(p, a)| {
            let t = &p.info;
            let (prefix_tokens, grid) = token_grid(t.positions, (h, w), vit);
            let tokens = a.tokens.max(1) as f64;
            TapNullcode {
                name: t.name.clone(),
                kind: t.kind,
                depth: t.depth,
                positions: t.positions,
                channels: t.channels,
                grid,
                prefix_tokens,
                dominant_channels: p.ones,
                null_share: a.null as f64 / tokens,
                null_share_img: a.spread(),
                hoyer: Distribution {
                    mean: a.hoyer_sum / tokens,
                    hist: Hist {
                        edges: edges(0.0, 1.0, HOYER_BINS),
                        counts: a.hoyer_counts.clone(),
                    },
                },
                cos: Distribution {
                    mean: a.cos_sum / tokens,
                    hist: Hist {
                        edges: edges(-1.0, 1.0, COS_BINS),
                        counts: a.cos_counts.clone(),
                    },
                },
                files: TapFiles {
                    hoyer: format!("taps/{}/hoyer.npy", t.name),
                    cos: format!("taps/{}/nullcode_cos.npy", t.name),
                },
            }
        })
        .collect();
    let report = NullcodeReport {
        schema: 1,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        images: n,
        thresholds,
        emergence: emergence(&entries),
        taps: entries,
        seconds: started.elapsed().as_secs_f64(),
        files,
    };
    let json = run.path.join("nullcode.json");
    write_json_atomic(&json, &report)?;
    let mut report = report;
    report.files.push(json);
    Ok(report)
}

impl NullcodeReport {
    /// The terminal table: one line per tap, then the emergence lines.
    pub fn table(&self) -> String {
        let mut s = format!(
            "null token: cos to the dominant pattern >= {}, Hoyer >= {}; {} images\n",
            self.thresholds.cos_min, self.thresholds.hoyer_min, self.images
        );
        let width = self
            .taps
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(3)
            .max(3);
        s += &format!(
            "{:<width$}  {:>8}  {:>14}  {:>8}  {:>8}  {:>9}\n",
            "tap", "null %", "per image sd", "Hoyer", "cos", "dominant"
        );
        for t in &self.taps {
            s += &format!(
                "{:<width$}  {:>7.2}%  {:>13.2}%  {:>8.3}  {:>8.3}  {:>4}/{:<4}\n",
                t.name,
                100.0 * t.null_share,
                100.0 * t.null_share_img.std,
                t.hoyer.mean,
                t.cos.mean,
                t.dominant_channels,
                t.channels
            );
        }
        for e in &self.emergence {
            let kind = format!("{:?}", e.kind).to_lowercase();
            match (&e.tap, e.depth, e.rise) {
                (Some(tap), Some(d), Some(r)) => {
                    s += &format!(
                        "emergence ({kind} taps): depth {d} ({tap}), null share +{:.2} points over the depth before\n",
                        100.0 * r
                    )
                }
                _ => {
                    s += &format!(
                        "emergence ({kind} taps): none ({})\n",
                        e.reason.as_deref().unwrap_or("")
                    )
                }
            }
        }
        s
    }
}
