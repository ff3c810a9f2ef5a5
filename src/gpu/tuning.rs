//! Kernel choices per adapter, timed once and remembered on disk.
//!
//! CPU adapters like lavapipe and real GPUs want opposite kernels (GPU-NOTES.md): the subgroup
//! matmul is 10-20x the tiled one on lavapipe and the reverse holds on discrete GPUs. Rather
//! than trust the adapter type, the first process on an adapter times each candidate that can
//! run there on a small representative problem (about a second, pipeline compilation included)
//! and writes the winners to `tuning.json` in the cache folder, keyed by adapter, driver and
//! sparsescope version; later processes read the file and start at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::Result;
use crate::gpu::ops::{self, Attention, AttentionVariant, Epilogue, MatmulVariant};
use crate::gpu::{Gpu, Plan};

/// The kernels chosen for this adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Choices {
    pub matmul: MatmulVariant,
    pub attention: AttentionVariant,
}

impl Choices {
    /// Whether the kernels with a texture twin (the convolution, the statistics, the RDM
    /// sketch) read their inputs from textures here: where the timing chose the matmul that
    /// reads textures, the adapter loads from textures faster than from buffers (lavapipe
    /// from Mesa 22.3), and the one timing decides for all of them.
    pub fn reads_textures(&self) -> bool {
        self.matmul.reads_textures()
    }
}

/// Where the choices came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Read from the cache file.
    Cached(PathBuf),
    /// Timed in this process (and written to the file, when given and writable).
    Timed {
        file: Option<PathBuf>,
        /// (candidate, milliseconds per run), every candidate that ran.
        timings: Vec<(String, f64)>,
    },
}

#[derive(Debug, Clone)]
pub struct Tuning {
    pub choices: Choices,
    pub source: Source,
}

impl Tuning {
    /// One line: "matmul subgroup, attention matmul (timed now: Tiled 22.3 ms, ...; cached in
    /// PATH)" or "(read from PATH)".
    pub fn describe(&self) -> String {
        let how = match &self.source {
            Source::Cached(f) => format!("read from {}", f.display()),
            Source::Timed { file, timings } => {
                let t: Vec<String> = timings
                    .iter()
                    .map(|(n, ms)| format!("{n} {ms:.1} ms"))
                    .collect();
                let saved = match file {
                    Some(f) => format!("; cached in {}", f.display()),
                    None => String::new(),
                };
                format!("timed now: {}{saved}", t.join(", "))
            }
        };
        let name = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
        format!(
            "matmul {}, attention {} ({how})",
            name(&self.choices.matmul),
            name(&self.choices.attention)
        )
    }
}

/// The cache folder: `$SPARSESCOPE_CACHE_DIR`, else `$XDG_CACHE_HOME/sparsescope`, else
/// `~/.cache/sparsescope`; `None` when none of these is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SPARSESCOPE_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("sparsescope"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("sparsescope"))
}

/// Raised whenever the candidates change, so that choices made without a new candidate are
/// timed again (2: `MatmulVariant::Texture`).
const CANDIDATES_REVISION: u32 = 2;

/// The key of this adapter in the cache file: name, backend, driver, the tool's version and
/// the candidates' revision (a new version may change the kernels).
fn adapter_key(gpu: &Gpu) -> String {
    format!(
        "{} | {:?} | {} {} | sparsescope {} | candidates {CANDIDATES_REVISION}",
        gpu.info.name,
        gpu.info.backend,
        gpu.info.driver,
        gpu.info.driver_info,
        env!("CARGO_PKG_VERSION")
    )
}

type CacheFile = BTreeMap<String, Choices>;

fn read_cache(path: &Path) -> CacheFile {
    // A missing, unreadable or corrupt file only means timing again (and rewriting it).
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_cache(path: &Path, cache: &CacheFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per process and call: several devices may tune at once (tests do).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.tmp{}.{call}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(cache).expect("choices serialise"),
    )?;
    std::fs::rename(&tmp, path)
}

/// The choices for `gpu`: from `cache_dir/tuning.json` when it has this adapter, else timed now
/// and written there (a cache folder that cannot be written is not an error: the choices then
/// last for this process).
pub fn tune(gpu: &Gpu, cache_dir: Option<&Path>) -> Result<Tuning> {
    let file = cache_dir.map(|d| d.join("tuning.json"));
    let key = adapter_key(gpu);
    let mut cache = file.as_deref().map(read_cache).unwrap_or_default();
    if let (Some(f), Some(choices)) = (&file, cache.get(&key))
        && usable(gpu, choices)
    {
        return Ok(Tuning {
            choices: *choices,
            source: Source::Cached(f.clone()),
        });
    }
    let mut timings = Vec::new();
    let matmul = fastest(MatmulVariant::ALL.iter().copied(), &mut timings, |v| {
        time_matmul(gpu, v)
    })?;
    let attention = fastest(AttentionVariant::ALL.iter().copied(), &mut timings, |v| {
        time_attention(gpu, v, matmul)
    })?;
    let choices = Choices { matmul, attention };
    if let Some(f) = &file {
        cache.insert(key, choices);
        if let Err(e) = write_cache(f, &cache) {
            eprintln!(
                "note: kernel choices not cached ({}: {e}); they are timed again next time",
                f.display()
            );
        }
    }
    Ok(Tuning {
        choices,
        source: Source::Timed { file, timings },
    })
}

/// A cached choice must still run here (e.g. a driver update removed subgroups).
fn usable(gpu: &Gpu, c: &Choices) -> bool {
    c.matmul.unsupported(gpu, 64).is_none()
}

/// The candidate with the least time; candidates that cannot run here (`None`) are skipped.
fn fastest<V: Copy + std::fmt::Debug>(
    candidates: impl Iterator<Item = V>,
    timings: &mut Vec<(String, f64)>,
    mut time: impl FnMut(V) -> Result<Option<f64>>,
) -> Result<V> {
    let mut best: Option<(V, f64)> = None;
    for v in candidates {
        if let Some(ms) = time(v)? {
            timings.push((format!("{v:?}"), ms));
            if best.is_none_or(|(_, b)| ms < b) {
                best = Some((v, ms));
            }
        }
    }
    Ok(best
        .expect("the tiled matmul and the fused attention run everywhere")
        .0)
}

/// Milliseconds per run of `plan`: one warm-up run (compiles the pipelines), then the best of 3.
fn time_plan(gpu: &Gpu, plan: &Plan) -> Result<f64> {
    plan.run(gpu)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        plan.run(gpu)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

/// A ViT-sized matmul slice: M = 394 (2 images of 197 tokens), K = N = 256.
fn time_matmul(gpu: &Gpu, v: MatmulVariant) -> Result<Option<f64>> {
    let (m, k, n) = (394, 256, 256);
    if v.unsupported(gpu, n).is_some() {
        return Ok(None);
    }
    let a = gpu.zeros("tuning a", &[m, k])?;
    let b = gpu.zeros("tuning b", &[k, n])?;
    let out = gpu.zeros("tuning out", &[m, n])?;
    let mut plan = Plan::default();
    plan.push(ops::matmul_with(
        gpu,
        v,
        &a,
        k,
        &b,
        &out,
        m,
        Epilogue::default(),
    )?);
    time_plan(gpu, &plan).map(Some)
}

/// Attention of 2 images, 197 tokens, 2 heads of 64.
fn time_attention(gpu: &Gpu, v: AttentionVariant, matmul: MatmulVariant) -> Result<Option<f64>> {
    let (b, t, h, dh) = (2, 197, 2, 64);
    let qkv = gpu.zeros("tuning qkv", &[b, t, 3 * h * dh])?;
    let out = gpu.zeros("tuning attention out", &[b, t, h * dh])?;
    let att = Attention::with_matmul(gpu, v, matmul, b, t, h, dh)?;
    let mut plan = Plan::default();
    plan.push_all(att.dispatches(gpu, &qkv, &out)?);
    time_plan(gpu, &plan).map(Some)
}
