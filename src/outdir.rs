//! Reading a finished `run` folder back: its summary, its image list, and each tap's arrays.
//! Every command that works on a run (`rsa`, `prune`, `nullcode`, `report`, `merge`) opens the
//! folder through `RunDir`, so a missing or foreign folder gives one clear error.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::data::{ImageEntry, ImageSet};
use crate::error::{Error, Result};
use crate::model::{TapInfo, TapKind};
use crate::npy::{NpyElement, read_npy};

/// The schema versions this build can read.
const SCHEMA_VERSION: u64 = crate::run::SCHEMA_VERSION as u64;

pub struct RunDir {
    pub path: PathBuf,
    pub summary: Value,
    /// One entry per image, in RDM order: (path as written, class label if any).
    pub images: Vec<(String, Option<String>)>,
}

fn field<'a>(v: &'a Value, path: &Path, key: &str) -> Result<&'a Value> {
    v.pointer(key)
        .ok_or_else(|| Error::file(path, format!("summary.json lacks {key}")))
}

impl RunDir {
    pub fn open(path: &Path) -> Result<RunDir> {
        let summary_path = path.join("summary.json");
        let text = std::fs::read_to_string(&summary_path).map_err(|e| {
            Error::file(
                &summary_path,
                format!("cannot read ({e}); is this the OUT folder of `sparsescope run`?"),
            )
        })?;
        let summary: Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(&summary_path, format!("not valid JSON: {e}")))?;
        let version = field(&summary, &summary_path, "/schema_version")?
            .as_u64()
            .unwrap_or(0);
        if version != SCHEMA_VERSION {
            return Err(Error::file(
                &summary_path,
                format!(
                    "schema version {version}, this sparsescope reads version {SCHEMA_VERSION}"
                ),
            ));
        }
        let list = path.join("images.txt");
        let text = std::fs::read_to_string(&list)
            .map_err(|e| Error::file(&list, format!("cannot read: {e}")))?;
        let images = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| match l.split_once('\t') {
                Some((p, label)) => (p.to_string(), Some(label.to_string())),
                None => (l.to_string(), None),
            })
            .collect();
        Ok(RunDir {
            path: path.to_path_buf(),
            summary,
            images,
        })
    }

    fn summary_path(&self) -> PathBuf {
        self.path.join("summary.json")
    }

    pub fn model_path(&self) -> Result<PathBuf> {
        let v = field(&self.summary, &self.summary_path(), "/model/path")?;
        Ok(PathBuf::from(v.as_str().unwrap_or_default()))
    }

    pub fn input_path(&self) -> Result<PathBuf> {
        let v = field(&self.summary, &self.summary_path(), "/inputs/path")?;
        Ok(PathBuf::from(v.as_str().unwrap_or_default()))
    }

    pub fn batch(&self) -> usize {
        self.summary
            .pointer("/flags/batch")
            .and_then(Value::as_u64)
            .unwrap_or(8) as usize
    }

    /// Whether the run stored its weights as f16 (`--f16-weights`; runs made before the flag
    /// existed did not).
    pub fn f16_weights(&self) -> bool {
        self.summary
            .pointer("/model/f16_weights")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn n_images(&self) -> usize {
        self.images.len()
    }

    /// Class labels as indices into the sorted class names, when every image has one.
    pub fn labels(&self) -> Option<(Vec<usize>, Vec<String>)> {
        let names: Vec<&str> = self
            .images
            .iter()
            .map(|(_, l)| l.as_deref())
            .collect::<Option<_>>()?;
        let mut classes: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        classes.sort();
        classes.dedup();
        let idx = names
            .iter()
            .map(|n| {
                classes
                    .iter()
                    .position(|c| c == n)
                    .expect("from the same list")
            })
            .collect();
        Some((idx, classes))
    }

    /// The images of the run in RDM order, for a second pass over the same inputs (image
    /// inputs only; a `.npy` input is re-read whole).
    pub fn image_set(&self) -> Result<ImageSet> {
        let mut set = ImageSet::from_paths(self.images.iter().map(|(p, _)| PathBuf::from(p)))?;
        if let Some((labels, classes)) = self.labels() {
            for (e, l) in set.entries.iter_mut().zip(labels) {
                *e = ImageEntry {
                    label: Some(l),
                    ..e.clone()
                };
            }
            set.classes = classes;
        }
        Ok(set)
    }

    /// Height and width of the run's preprocessed images (`inputs.image_shape`).
    pub fn image_hw(&self) -> Result<(usize, usize)> {
        let shape = &self.summary["inputs"]["image_shape"];
        let (h, w) = (
            shape[1].as_u64().unwrap_or(0) as usize,
            shape[2].as_u64().unwrap_or(0) as usize,
        );
        if h == 0 || w == 0 {
            return Err(Error::file(
                self.summary_path(),
                "inputs.image_shape is missing",
            ));
        }
        Ok((h, w))
    }

    /// The taps of the run, in forward order.
    pub fn taps(&self) -> Result<Vec<TapInfo>> {
        let taps = field(&self.summary, &self.summary_path(), "/taps")?
            .as_array()
            .cloned()
            .unwrap_or_default();
        taps.iter()
            .map(|t| {
                let t = &t["tap"];
                let kind = match t["kind"].as_str() {
                    Some("block") => TapKind::Block,
                    Some("hidden") => TapKind::Hidden,
                    _ => TapKind::Other,
                };
                Ok(TapInfo {
                    name: t["name"].as_str().unwrap_or_default().to_string(),
                    kind,
                    depth: t["depth"].as_u64().unwrap_or(0) as usize,
                    positions: t["positions"].as_u64().unwrap_or(0) as usize,
                    channels: t["channels"].as_u64().unwrap_or(0) as usize,
                })
            })
            .collect()
    }

    /// The summary entry of tap `name`.
    pub fn tap_summary(&self, name: &str) -> Result<&Value> {
        self.summary["taps"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["tap"]["name"] == name))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "tap '{name}' is not in the run at {}",
                    self.path.display()
                ))
            })
    }

    /// Path of array `file` (e.g. "firing_rate") of tap `tap`.
    pub fn array_path(&self, tap: &str, file: &str) -> PathBuf {
        self.path.join("taps").join(tap).join(format!("{file}.npy"))
    }

    /// Array `file` of tap `tap`, with its shape.
    pub fn array<T: NpyElement>(&self, tap: &str, file: &str) -> Result<(Vec<usize>, Vec<T>)> {
        read_npy(self.array_path(tap, file))
    }
}
