//! What `report` reads from a run folder: the run's summary and per-tap arrays, and the outputs
//! of `rsa`, `prune` and `nullcode` when those commands have been run on it.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::TapKind;
use crate::outdir::RunDir;

/// One tap's numbers for the figures.
#[derive(Debug, Clone)]
pub struct TapData {
    pub name: String,
    pub kind: TapKind,
    pub depth: usize,
    pub positions: usize,
    pub channels: usize,
    pub frac_active: f64,
    /// Mean flat correlation distance between images (decorrelation), when the run has it.
    pub decorrelation: Option<f64>,
    /// hist_pos: 100 bins on (0, 10] plus the overflow (x > 10) last.
    pub hist_pos: Vec<u64>,
    pub firing_rate: Vec<f64>,
}

pub struct RunData {
    pub run: RunDir,
    pub taps: Vec<TapData>,
    /// Class of each image (index into `classes`), when images.txt has labels.
    pub labels: Option<(Vec<usize>, Vec<String>)>,
    /// The RSA matrices `sparsescope rsa OUT` wrote (JSON reports).
    pub rsa: Vec<(PathBuf, Value)>,
    /// prune/summary.json.
    pub prune: Option<Value>,
    /// nullcode.json.
    pub nullcode: Option<Value>,
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::file(path, format!("not valid JSON: {e}")))
}

impl RunData {
    pub fn load(out: &Path) -> Result<RunData> {
        let run = RunDir::open(out)?;
        let mut taps = Vec::new();
        for t in run.taps()? {
            let entry = run.tap_summary(&t.name)?;
            let stats = &entry["stats"];
            let (_, hist_pos) = run.array::<u64>(&t.name, "hist_pos")?;
            let (_, firing_rate) = run.array::<f64>(&t.name, "firing_rate")?;
            taps.push(TapData {
                frac_active: stats["frac_active"].as_f64().unwrap_or(f64::NAN),
                decorrelation: entry["decorrelation"].as_f64(),
                hist_pos,
                firing_rate,
                name: t.name,
                kind: t.kind,
                depth: t.depth,
                positions: t.positions,
                channels: t.channels,
            });
        }
        let mut rsa = Vec::new();
        if let Ok(dir) = std::fs::read_dir(run.path.join("rsa")) {
            let mut files: Vec<PathBuf> = dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for f in files {
                let v = read_json(&f)?;
                if v["kind"] == "within" {
                    rsa.push((f, v));
                }
            }
        }
        let prune_path = run.path.join("prune").join("summary.json");
        let prune = if prune_path.exists() {
            Some(read_json(&prune_path)?)
        } else {
            None
        };
        let null_path = run.path.join("nullcode.json");
        let nullcode = if null_path.exists() {
            Some(read_json(&null_path)?)
        } else {
            None
        };
        Ok(RunData {
            labels: run.labels(),
            run,
            taps,
            rsa,
            prune,
            nullcode,
        })
    }
}
