//! `sparsescope run`: every statistic of DESIGN.md in one streaming pass. Per batch the forward
//! plan runs with, at each chosen tap, the statistics kernels (`stats::TapStats`) and the flat
//! Gram accumulator (`rdm::GramAccumulator`) recorded right where the tap's value is ready;
//! only pooled features ([n, C] per batch) come back per batch. After the last batch, one
//! read-back per tap, finalisation in f64, and the outputs, each written atomically.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::BatchSource;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::{Network, TapInfo, select::select_taps};
use crate::npy::{NpyWriter, Staged, commit_all, stage_npy};
use crate::pass::StatsPass;
use crate::rdm::{FeatureGram, FlatMode, GramSource, Measure, plan_flat_modes, stream_rdms};
use crate::stats::{StatsConfig, TapTotals};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunOptions {
    pub taps: Vec<String>,
    pub batch: usize,
    pub stats: StatsConfig,
    pub measures: Vec<Measure>,
    /// GPU bytes all taps' flat RDM stores may use; beyond it flat RDMs are sketched.
    pub rdm_budget: u64,
    pub sketch_dim: usize,
    pub seed: u64,
    pub strict: bool,
    /// This process is shard `index` of `count` over a list of `total` images.
    pub shard: Option<Shard>,
    /// For a part of an interrupted run (`--resume`): where this part starts in the whole list
    /// (with `shard` giving the part's number and the list's length).
    pub part_start: Option<usize>,
}

/// Set by the Ctrl-C handler: the run stops after the batch in flight, keeps what it computed
/// under OUT/.resume/ and says how to finish it with `--resume`.
pub static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether to stop before the next batch: Ctrl-C, or (for tests, which cannot time a signal
/// reliably) `SPARSESCOPE_STOP_AFTER_BATCHES=k` after k batches.
fn stop_requested(batches_done: usize) -> bool {
    INTERRUPT.load(std::sync::atomic::Ordering::SeqCst)
        || std::env::var("SPARSESCOPE_STOP_AFTER_BATCHES")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|k| batches_done >= k)
}

/// Where an interrupted run keeps its parts: OUT/.resume/part-0, part-1, ...
pub fn resume_dir(out: &Path) -> PathBuf {
    out.join(".resume")
}

/// One of `count` contiguous parts of the image list (`--shard index/count`, 0-based); the
/// parts cover the list in order, so merged shards equal one run (`sparsescope merge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// Images in the whole list (skipped ones included).
    pub total: usize,
}

impl Shard {
    /// `"i/n"` with 0 <= i < n.
    pub fn parse(s: &str) -> Result<(usize, usize)> {
        let bad = || {
            Error::Usage(format!(
                "--shard '{s}': expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4 \
                 ($SLURM_ARRAY_TASK_ID/4)"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i >= n {
            return Err(bad());
        }
        Ok((i, n))
    }

    /// The images of shard `index` of `count` in a list of `total`.
    pub fn range(index: usize, count: usize, total: usize) -> std::ops::Range<usize> {
        total * index / count..total * (index + 1) / count
    }
}

/// What the terminal table shows per tap.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TapRow {
    pub name: String,
    pub frac_active: f64,
    pub mean_firing_rate: f64,
    pub dead_channels: usize,
    pub channels: usize,
    pub hoyer_mean: Option<f64>,
    pub decorrelation: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub images: usize,
    pub skipped: Vec<(PathBuf, String)>,
    pub rows: Vec<TapRow>,
    pub summary: PathBuf,
}

/// The process's peak resident memory (Linux `VmHWM`; `None` elsewhere). On a software
/// adapter GPU buffers live in this memory too.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| Error::file(path, format!("cannot read: {e}"));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    // In pieces: a checkpoint (346 MB for ViT-B) is never held whole in memory.
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(cannot)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub(crate) fn stage_json(path: &Path, value: &serde_json::Value) -> Result<Staged> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    Staged::write(path, text.as_bytes())
}

/// Run `model` over `source`, writing everything under `out`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: &Gpu,
    model: &dyn Network,
    model_path: &Path,
    input: &Path,
    mut source: BatchSource,
    out: &Path,
    options: &RunOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<RunReport> {
    let started = std::time::Instant::now();
    let [_, height, width] = source.image_shape();
    let all = model.taps(height, width)?;
    let chosen = select_taps(&all, &options.taps)?;
    let taps: Vec<TapInfo> = chosen.iter().map(|&i| all[i].clone()).collect();
    let total = source.len();
    let batch = options.batch.clamp(1, total.max(1));
    let labels = source
        .image_set()
        .filter(|s| s.has_labels())
        .map(|s| s.classes.clone());
    let mut config = options.stats.clone();
    config.classes = labels.as_ref().map_or(0, Vec::len);
    config.validate()?;
    for dir in [out.to_path_buf(), out.join("taps")] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::file(&dir, format!("cannot create the output folder: {e}")))?;
    }

    let dims: Vec<usize> = taps.iter().map(|t| t.positions * t.channels).collect();
    // A shard decides exact or sketched flat RDMs as the run over the whole list would, so
    // that the merged flat RDMs are that run's.
    let modes = plan_flat_modes(
        options.rdm_budget,
        options.shard.map_or(total, |s| s.total),
        batch,
        &dims,
        options.sketch_dim,
        options.seed,
    );
    let mut pass = StatsPass::new(
        gpu,
        model,
        &chosen,
        batch,
        (height, width),
        &config,
        &modes,
        total,
    )?;
    let mut pooled: Vec<Vec<f32>> = taps
        .iter()
        .map(|t| Vec::with_capacity(total * t.channels))
        .collect();

    // One label per image of the set (when every image sits in a class folder) and the lines of
    // images.txt, taken before the loop borrows the source.
    let set = source.image_set().cloned();
    let all_labels: Option<Vec<u32>> = set.as_ref().filter(|s| s.has_labels()).map(|s| {
        s.entries
            .iter()
            .map(|e| e.label.unwrap_or(0) as u32)
            .collect()
    });
    let mut kept: Vec<usize> = Vec::with_capacity(total);
    let mut skipped = Vec::new();
    let (mut listed_done, mut batches_done, mut interrupted) = (0usize, 0usize, false);
    loop {
        if listed_done < total && stop_requested(batches_done) {
            interrupted = true;
            break;
        }
        let Some(b) = source.next() else { break };
        let b = b?;
        listed_done += b.indices.len() + b.skipped.len();
        batches_done += 1;
        if let Some((path, why)) = b.skipped.first() {
            if options.strict {
                return Err(Error::file(
                    path,
                    format!("unreadable image ({why}); --strict stops here"),
                ));
            }
            skipped.extend(b.skipped.iter().cloned());
        }
        let n = b.len();
        if n == 0 {
            continue;
        }
        let batch_labels: Option<Vec<u32>> = all_labels
            .as_ref()
            .map(|l| b.indices.iter().map(|&i| l[i]).collect());
        for (k, p) in pass
            .run_batch(gpu, b.data, n, batch_labels.as_deref())?
            .into_iter()
            .enumerate()
        {
            pooled[k].extend(p);
        }
        kept.extend(&b.indices);
        progress(kept.len());
    }
    let images = kept.len();
    let whole_list = options.shard.map_or(total, |s| s.total);
    let first_image = options.part_start.unwrap_or(0);
    if interrupted && images == 0 {
        return Err(Error::Interrupted {
            done: first_image,
            total: whole_list,
            kept: None,
        });
    }
    // An interrupted run writes what it has as a part under OUT/.resume (a part of a resumed
    // run already writes there), and none of OUT's own files change.
    let (out, shard, part_start) = if interrupted && options.part_start.is_none() {
        let dir = resume_dir(out);
        let _ = std::fs::remove_dir_all(&dir);
        (
            dir.join("part-0"),
            Some(Shard {
                index: 0,
                count: 1,
                total: whole_list,
            }),
            Some(0),
        )
    } else {
        (out.to_path_buf(), options.shard, options.part_start)
    };
    let out = out.as_path();
    if interrupted {
        for dir in [out.to_path_buf(), out.join("taps")] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::file(&dir, format!("cannot create: {e}")))?;
        }
    }
    if images == 0 {
        return Err(Error::Usage(
            "no image could be read; nothing was computed".into(),
        ));
    }

    // images.txt: path, then a tab and the class label when there is one, in RDM order.
    let mut lines = String::new();
    for &i in &kept {
        match &set {
            Some(set) => {
                lines.push_str(&set.entries[i].path.to_string_lossy());
                if let Some(label) = set.label_name(i) {
                    lines.push('\t');
                    lines.push_str(label);
                }
            }
            None => lines.push_str(&format!("{}[{i}]", input.display())),
        }
        lines.push('\n');
    }
    // Every output is staged under a temporary name and renamed only once all are complete: a
    // failure part-way (a full disk) leaves an earlier run in OUT whole and consistent.
    let mut staged = vec![Staged::write(out.join("images.txt"), lines.as_bytes())?];

    let mut rows = Vec::with_capacity(taps.len());
    let mut tap_summaries = Vec::with_capacity(taps.len());
    for (k, t) in taps.iter().enumerate() {
        let totals = pass.stats[k].finish(gpu)?;
        let dir = out.join("taps").join(&t.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::file(&dir, format!("cannot create: {e}")))?;
        if shard.is_some() {
            stage_shard_state(&mut staged, gpu, &dir, &pass, k)?;
        }
        let mut flat = pass.grams[k].source(gpu)?;
        let mut pooled_gram = FeatureGram::new(&pooled[k], images, t.channels)?;
        let (files, decorrelation) = write_tap_arrays(
            &mut staged,
            &dir,
            t,
            &totals,
            &pooled[k],
            images,
            &mut pooled_gram,
            &mut flat,
            &options.measures,
        )?;
        let mean_rate =
            totals.firing_rate.iter().sum::<f64>() / totals.firing_rate.len().max(1) as f64;
        rows.push(TapRow {
            name: t.name.clone(),
            frac_active: totals.frac_active,
            mean_firing_rate: mean_rate,
            dead_channels: totals.dead_channels,
            channels: t.channels,
            hoyer_mean: totals.hoyer_mean,
            decorrelation,
        });
        tap_summaries.push(tap_entry(
            t,
            &totals,
            decorrelation,
            modes[k],
            pass.grams[k].expected_error(),
            files,
        ));
    }

    let summary = serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "sparsescope", "version": env!("CARGO_PKG_VERSION")},
        "adapter": gpu.summary(),
        "model": {
            "path": model_path,
            "sha256": sha256_file(model_path)?,
            "arch": model.arch(),
            "description": model.describe(),
            "parameters": model.parameters(),
            "f16_weights": model.f16_weights(),
        },
        "inputs": {
            "path": input,
            "images": images,
            "skipped": skipped.iter().map(|(p, why)| serde_json::json!({"path": p, "reason": why})).collect::<Vec<_>>(),
            "classes": set.as_ref().filter(|s| s.has_labels()).map(|s| s.classes.clone()),
            "image_shape": [3, height, width],
            "preprocess": format!("{:?}", model.preprocess()),
        },
        "flags": options,
        "resources": {
            "seconds": started.elapsed().as_secs_f64(),
            "images_per_second": images as f64 / started.elapsed().as_secs_f64(),
            "peak_rss_bytes": peak_rss_bytes(),
        },
        "taps": tap_summaries,
    });
    if let Some(shard) = shard {
        let range = Shard::range(shard.index, shard.count, shard.total);
        staged.push(stage_json(
            &out.join("shard.json"),
            &serde_json::json!({
                "shard": shard,
                "first_image": part_start.unwrap_or(range.start),
                "listed_images": if part_start.is_some() { listed_done } else { range.len() },
                "images": images,
                "interrupted": interrupted,
            }),
        )?);
    }
    let summary_path = out.join("summary.json");
    staged.push(stage_json(&summary_path, &summary)?);
    commit_all(staged)?;
    if interrupted {
        return Err(Error::Interrupted {
            done: first_image + listed_done,
            total: whole_list,
            kept: Some(out.to_path_buf()),
        });
    }
    if options.part_start.is_none() {
        // A complete run over OUT supersedes the parts of an earlier interrupted one.
        let _ = std::fs::remove_dir_all(resume_dir(out));
    }
    Ok(RunReport {
        images,
        skipped,
        rows,
        summary: summary_path,
    })
}

/// A tap's entry of `summary.json` (the `taps[]` fields the README documents).
pub(crate) fn tap_entry(
    t: &TapInfo,
    totals: &TapTotals,
    decorrelation: Option<f64>,
    mode: FlatMode,
    expected_error: f64,
    files: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "tap": t,
        "stats": totals,
        "decorrelation": decorrelation,
        "rdm_flat": match mode {
            FlatMode::Exact => serde_json::json!({"mode": "exact"}),
            FlatMode::Sketch { dim, seed } => serde_json::json!({
                "mode": "sketch", "sketch_dim": dim, "seed": seed,
                "expected_error": expected_error,
            }),
        },
        "files": files,
    })
}

/// What `merge` needs of tap `k` of a shard, beside its normal outputs: the raw counts
/// (`shard_raw.json`), and the flat RDM's store rows and row statistics (`flat_rows.npy`
/// [n, width], `flat_stats.npy` [n, 4]: the features themselves when exact, their sketches
/// otherwise).
fn stage_shard_state(
    staged: &mut Vec<Staged>,
    gpu: &Gpu,
    dir: &Path,
    pass: &StatsPass,
    k: usize,
) -> Result<()> {
    let raw = pass.stats[k].raw(gpu)?;
    staged.push(stage_json(
        &dir.join("shard_raw.json"),
        &serde_json::to_value(&raw).expect("counts serialise"),
    )?);
    let (rows, stats) = pass.grams[k].export_rows(gpu)?;
    let n = stats.len() / 4;
    let width = pass.grams[k].width();
    staged.push(stage_npy(dir.join("flat_rows.npy"), &[n, width], &rows)?);
    staged.push(stage_npy(dir.join("flat_stats.npy"), &[n, 4], &stats)?);
    Ok(())
}

/// Write one tap's arrays (DESIGN.md "Outputs"), the RDMs streamed block by block from their
/// Gram sources; returns file name -> path relative to OUT, and the decorrelation (the mean
/// flat correlation distance; `None` for fewer than two images).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_tap_arrays(
    staged: &mut Vec<Staged>,
    dir: &Path,
    tap: &TapInfo,
    totals: &TapTotals,
    pooled: &[f32],
    images: usize,
    pooled_gram: &mut dyn GramSource,
    flat_gram: &mut dyn GramSource,
    measures: &[Measure],
) -> Result<(serde_json::Map<String, serde_json::Value>, Option<f64>)> {
    let c = tap.channels;
    let mut files = serde_json::Map::new();
    let mut note = |name: &str| {
        files.insert(
            name.to_string(),
            serde_json::Value::String(format!("taps/{}/{name}.npy", tap.name)),
        );
        dir.join(format!("{name}.npy"))
    };
    staged.push(stage_npy(note("firing_count"), &[c], &totals.firing_count)?);
    staged.push(stage_npy(note("firing_rate"), &[c], &totals.firing_rate)?);
    staged.push(stage_npy(
        note("firing_rate_img"),
        &[c],
        &totals.firing_rate_img,
    )?);
    if totals.classes > 0 {
        staged.push(stage_npy(
            note("firing_rate_img_by_class"),
            &[totals.classes, c],
            &totals.firing_rate_img_by_class,
        )?);
    }
    staged.push(stage_npy(
        note("hist"),
        &[totals.hist.counts.len()],
        &totals.hist.counts,
    )?);
    staged.push(stage_npy(
        note("hist_pos"),
        &[totals.hist_pos.counts.len()],
        &totals.hist_pos.counts,
    )?);
    staged.push(stage_npy(
        note("loghist_pos"),
        &[totals.loghist_pos.counts.len()],
        &totals.loghist_pos.counts,
    )?);
    staged.push(stage_npy(
        note("loghist_neg"),
        &[totals.loghist_neg.counts.len()],
        &totals.loghist_neg.counts,
    )?);
    staged.push(stage_npy(note("pooled"), &[images, c], pooled)?);
    let mut stream = |kind: &str, source: &mut dyn GramSource| -> Result<Option<f64>> {
        let mut writers = measures
            .iter()
            .map(|m| {
                NpyWriter::<f64>::create(
                    note(&format!("rdm_{kind}_{}", m.name())),
                    &[images, images],
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mean = stream_rdms(source, measures, &mut |k, rows| writers[k].append(rows))?;
        for w in writers {
            staged.push(w.stage()?);
        }
        Ok(mean)
    };
    stream("pooled", pooled_gram)?;
    let decorrelation = stream("flat", flat_gram)?;
    Ok((files, decorrelation))
}
