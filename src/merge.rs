//! `sparsescope merge SHARD... --out OUT`: the runs of `run --shard i/n` combined into the run
//! over the whole image list. Counts and histograms add exactly (the shards' raw counts,
//! `shard_raw.json`); pooled features concatenate; the flat RDMs are rebuilt on the GPU by
//! feeding every shard's stored rows (`flat_rows.npy`, `flat_stats.npy`: features or sketches,
//! with their row statistics) through the same Gram kernels a single run uses.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Plan};
use crate::model::TapInfo;
use crate::npy::read_npy;
use crate::npy::{Staged, commit_all};
use crate::outdir::RunDir;
use crate::rdm::{FeatureGram, FlatMode, GramAccumulator, Measure};
use crate::run::{Shard, stage_json, tap_entry, write_tap_arrays};
use crate::stats::{LinearHistSpec, PosHistSpec, Predicate, RawCounts, TapTotals};

#[derive(Debug, Clone, serde::Serialize)]
pub struct MergeReport {
    pub shards: usize,
    pub images: usize,
    pub taps: usize,
    pub summary: PathBuf,
}

struct Part {
    shard: Shard,
    run: RunDir,
    images: usize,
}

fn open_part(path: &Path) -> Result<Part> {
    let run = RunDir::open(path)?;
    let file = path.join("shard.json");
    let bytes = std::fs::read(&file).map_err(|_| {
        Error::file(
            &file,
            "missing: this run is not a shard (made without --shard INDEX/COUNT)",
        )
    })?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(&file, format!("not valid JSON: {e}")))?;
    let shard: Shard = serde_json::from_value(v["shard"].clone())
        .map_err(|e| Error::file(&file, format!("no valid `shard` entry: {e}")))?;
    let images = v["images"].as_u64().unwrap_or(0) as usize;
    Ok(Part { shard, run, images })
}

/// The shards' flags without the shard itself: what must agree for them to belong together.
fn common_flags(run: &RunDir) -> serde_json::Value {
    let mut f = run.summary["flags"].clone();
    if let Some(o) = f.as_object_mut() {
        o.remove("shard");
        o.remove("part_start");
    }
    f
}

/// The parts come from one run: same list, model, input and flags; with `numbered`, they are
/// also the shards 0..COUNT-1 of it, each once.
fn check_together(parts: &[Part], numbered: bool) -> Result<()> {
    let first = &parts[0];
    let count = first.shard.count;
    for p in parts {
        let why = if numbered && (p.shard.count != count || p.shard.total != first.shard.total) {
            Some(format!(
                "is shard {}/{} of {} images, the first is {}/{} of {}",
                p.shard.index,
                p.shard.count,
                p.shard.total,
                first.shard.index,
                count,
                first.shard.total
            ))
        } else if p.run.summary["model"]["sha256"] != first.run.summary["model"]["sha256"] {
            Some("was made with another model (sha256 differs)".into())
        } else if p.run.f16_weights() != first.run.f16_weights() {
            Some("was made with other weight storage (--f16-weights in one only)".into())
        } else if common_flags(&p.run) != common_flags(&first.run) {
            Some("was made with other flags (see flags in summary.json)".into())
        } else if p.run.summary["inputs"]["path"] != first.run.summary["inputs"]["path"] {
            Some("was made from another input".into())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(Error::file(
                &p.run.path,
                format!("{why}: not a shard of the same run"),
            ));
        }
    }
    if !numbered {
        return Ok(());
    }
    for i in 0..count {
        let n = parts.iter().filter(|p| p.shard.index == i).count();
        if n != 1 {
            return Err(Error::Usage(format!(
                "shard {i}/{count} is given {n} times; merge needs each of 0..{} exactly once",
                count - 1
            )));
        }
    }
    if parts.len() != count {
        return Err(Error::Usage(format!(
            "{} folders for {count} shards",
            parts.len()
        )));
    }
    Ok(())
}

/// The histogram specs and predicate of the shards' statistics, from their recorded flags.
fn stats_specs(run: &RunDir) -> Result<(Predicate, LinearHistSpec, PosHistSpec)> {
    let s = &run.summary["flags"]["stats"];
    let bad = |what: &str| {
        Error::file(
            run.path.join("summary.json"),
            format!("flags.stats lacks {what}"),
        )
    };
    let predicate: Predicate = s["predicate"]
        .as_str()
        .ok_or_else(|| bad("predicate"))?
        .parse()?;
    let hist = LinearHistSpec {
        lo: s["hist"]["lo"].as_f64().ok_or_else(|| bad("hist.lo"))?,
        hi: s["hist"]["hi"].as_f64().ok_or_else(|| bad("hist.hi"))?,
        bins: s["hist"]["bins"].as_u64().ok_or_else(|| bad("hist.bins"))? as usize,
    };
    let hist_pos = PosHistSpec {
        hi: s["hist_pos"]["hi"]
            .as_f64()
            .ok_or_else(|| bad("hist_pos.hi"))?,
        bins: s["hist_pos"]["bins"]
            .as_u64()
            .ok_or_else(|| bad("hist_pos.bins"))? as usize,
    };
    Ok((predicate, hist, hist_pos))
}

fn flat_mode(run: &RunDir, tap: &str) -> Result<FlatMode> {
    let v = &run.tap_summary(tap)?["rdm_flat"];
    Ok(match v["mode"].as_str() {
        Some("sketch") => FlatMode::Sketch {
            dim: v["sketch_dim"].as_u64().unwrap_or(0) as usize,
            seed: v["seed"].as_u64().unwrap_or(0),
        },
        _ => FlatMode::Exact,
    })
}

/// The flat rows of all shards, in shard order, in the accumulator a single run uses (whose
/// `source` then gives the merged flat Gram through the same kernels).
fn flat_rows(
    gpu: &Gpu,
    parts: &[Part],
    t: &TapInfo,
    mode: FlatMode,
    n: usize,
    batch: usize,
) -> Result<GramAccumulator> {
    let mut acc = GramAccumulator::new(gpu, mode, t.positions * t.channels, n.max(1), batch)?;
    let width = acc.width();
    let input = gpu.zeros("merged flat rows", &[batch, width])?;
    let plan = Plan {
        steps: acc.given_steps(gpu, &input)?,
    };
    for p in parts {
        let rows_path = p.run.array_path(&t.name, "flat_rows");
        let (rshape, rows) = read_npy::<f32>(&rows_path)?;
        let (sshape, stats) = read_npy::<f32>(p.run.array_path(&t.name, "flat_stats"))?;
        if rshape != [p.images, width] || sshape != [p.images, 4] {
            return Err(Error::file(
                &rows_path,
                format!(
                    "shape {rshape:?} (statistics {sshape:?}), expected [{}, {width}] for this shard's images",
                    p.images
                ),
            ));
        }
        for start in (0..p.images).step_by(batch) {
            let nb = batch.min(p.images - start);
            let mut data = rows[start * width..(start + nb) * width].to_vec();
            data.resize(batch * width, 0.0);
            gpu.write(&input, &data);
            acc.begin_given_batch(gpu, nb, &stats[start * 4..(start + nb) * 4])?;
            plan.run(gpu)?;
        }
    }
    Ok(acc)
}

/// Merge the shard run folders `shards` into `out`.
pub fn merge(
    gpu: &Gpu,
    shards: &[PathBuf],
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<MergeReport> {
    let started = std::time::Instant::now();
    if shards.is_empty() {
        return Err(Error::Usage("merge needs the shard folders".into()));
    }
    let mut parts = shards
        .iter()
        .map(|p| open_part(p))
        .collect::<Result<Vec<_>>>()?;
    parts.sort_by_key(|p| p.shard.index);
    check_together(&parts, true)?;
    merge_parts(gpu, &parts, out, progress, started)
}

/// Merge the parts of an interrupted and resumed run (OUT/.resume/part-*), in the order given,
/// which is the order of the image list.
pub fn merge_in_order(
    gpu: &Gpu,
    folders: &[PathBuf],
    out: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<MergeReport> {
    let started = std::time::Instant::now();
    let parts = folders
        .iter()
        .map(|p| open_part(p))
        .collect::<Result<Vec<_>>>()?;
    if parts.is_empty() {
        return Err(Error::Usage("nothing to merge".into()));
    }
    check_together(&parts, false)?;
    merge_parts(gpu, &parts, out, progress, started)
}

fn merge_parts(
    gpu: &Gpu,
    parts: &[Part],
    out: &Path,
    progress: &mut dyn FnMut(usize),
    started: std::time::Instant,
) -> Result<MergeReport> {
    let first = &parts[0].run;
    let taps = first.taps()?;
    for p in &parts[1..] {
        let other = p.run.taps()?;
        let same = other.len() == taps.len()
            && other.iter().zip(&taps).all(|(a, b)| {
                (&a.name, a.positions, a.channels) == (&b.name, b.positions, b.channels)
            });
        if !same {
            return Err(Error::file(
                &p.run.path,
                "has other taps than the first shard",
            ));
        }
    }
    let (predicate, hist, hist_pos) = stats_specs(first)?;
    let flags = common_flags(first);
    let batch = flags["batch"].as_u64().unwrap_or(8).max(1) as usize;
    let measures = flags["measures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str())
                .map(Measure::parse)
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_else(|| vec![Measure::Correlation]);
    let n: usize = parts.iter().map(|p| p.images).sum();
    if n == 0 {
        return Err(Error::Usage("the shards hold no images".into()));
    }
    for dir in [out.to_path_buf(), out.join("taps")] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::file(&dir, format!("cannot create the output folder: {e}")))?;
    }

    // Everything is staged and renamed into place only once all is written (as `run` does).
    let mut staged: Vec<Staged> = Vec::new();
    let mut entries = Vec::with_capacity(taps.len());
    for (k, t) in taps.iter().enumerate() {
        let mut raw = RawCounts::default();
        let mut pooled = Vec::with_capacity(n * t.channels);
        for p in parts {
            let file = p.run.path.join("taps").join(&t.name).join("shard_raw.json");
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::file(&file, format!("cannot read: {e}")))?;
            let r: RawCounts = serde_json::from_slice(&bytes)
                .map_err(|e| Error::file(&file, format!("not valid raw counts: {e}")))?;
            raw = if raw.images == 0 && raw.firing_count.is_empty() {
                r
            } else {
                raw.merge(&r)
            };
            let (shape, x) = p.run.array::<f32>(&t.name, "pooled")?;
            if shape != [p.images, t.channels] {
                return Err(Error::file(
                    p.run.array_path(&t.name, "pooled"),
                    format!("shape {shape:?}, expected [{}, {}]", p.images, t.channels),
                ));
            }
            pooled.extend(x);
        }
        let totals = TapTotals::finalise(raw, t.positions, t.channels, predicate, &hist, &hist_pos);
        let mut pooled_gram = FeatureGram::new(&pooled, n, t.channels)?;
        let mode = flat_mode(first, &t.name)?;
        let acc = flat_rows(gpu, parts, t, mode, n, batch)?;
        let dir = out.join("taps").join(&t.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::file(&dir, format!("cannot create: {e}")))?;
        let (files, decorrelation) = write_tap_arrays(
            &mut staged,
            &dir,
            t,
            &totals,
            &pooled,
            n,
            &mut pooled_gram,
            &mut acc.source(gpu)?,
            &measures,
        )?;
        entries.push(tap_entry(
            t,
            &totals,
            decorrelation,
            mode,
            acc.expected_error(),
            files,
        ));
        progress(k + 1);
    }

    let mut lines = String::new();
    let mut skipped = Vec::new();
    for p in parts {
        let f = p.run.path.join("images.txt");
        lines += &std::fs::read_to_string(&f)
            .map_err(|e| Error::file(&f, format!("cannot read: {e}")))?;
        if let Some(s) = p.run.summary["inputs"]["skipped"].as_array() {
            skipped.extend(s.iter().cloned());
        }
    }
    staged.push(Staged::write(out.join("images.txt"), lines.as_bytes())?);
    let mut summary = first.summary.clone();
    summary["flags"] = flags;
    summary["inputs"]["images"] = n.into();
    summary["inputs"]["skipped"] = skipped.into();
    summary["merged_from"] = parts
        .iter()
        .map(|p| serde_json::json!({"shard": p.shard, "path": p.run.path, "images": p.images}))
        .collect::<Vec<_>>()
        .into();
    summary["resources"] = serde_json::json!({"seconds": started.elapsed().as_secs_f64()});
    summary["taps"] = entries.into();
    let path = out.join("summary.json");
    staged.push(stage_json(&path, &summary)?);
    commit_all(staged)?;
    Ok(MergeReport {
        shards: parts.len(),
        images: n,
        taps: taps.len(),
        summary: path,
    })
}
