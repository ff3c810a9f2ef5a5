//! Shared helpers for the forward-pass tests: random-weight checkpoints rebuilt from the
//! manifests in tests/golden/, the golden files written by tests/golden/make_golden.py, and
//! closeness checks whose failures name the tap and the element.
//!
//! Include with `mod common;` from a test crate. Typical use:
//!
//! ```ignore
//! let (checkpoint, golden) = common::fixture("vit_tiny")?;
//! // ... load `checkpoint`, run golden.input through it, collect (tap name, values) ...
//! common::compare_taps(&golden, &got, 1e-4, 1e-4);
//! ```
//!
//! # The weight generator (must stay identical to make_golden.py)
//!
//! Git holds only a recipe (seed, lo, hi) per tensor. For a tensor with seed `s` (u64) and flat
//! element index `i` (row-major, 0-based), in wrapping u64 arithmetic:
//!
//! ```text
//! z = s * 0x9E3779B97F4A7C15 + i
//! z = z + 0x9E3779B97F4A7C15                       // splitmix64 finaliser from here on
//! z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//! z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//! z = z ^ (z >> 31)
//! u = (z >> 40) as f64 / 2^24                      // exact, in [0, 1)
//! v = lo + (hi - lo) * u                           // f64, in this order, no fused multiply-add
//! ```
//!
//! `v` is then rounded once, directly from f64, to the manifest dtype with round-to-nearest,
//! ties-to-even: f32 by `as f32`; f16 (11 significant bits, subnormal below 2^-14) and bf16
//! (8 significant bits, subnormal below 2^-126) by `r = rint(v / 2^q) * 2^q` with
//! `q = max(floor(log2 |v|), emin) - (p - 1)`, after which `r` is exact in the target format.
//! The explicit formula is there because `half`'s `from_f64` is not one rounding from f64 (the
//! f16 path goes through f32 on x86, the bf16 path truncates the low 32 bits first), and numpy's
//! float16 cast has the same issue; rare ties would then differ between the two languages.
//!
//! Seeds are the first 8 bytes, little-endian, of sha256("<fixture>/<key>"); the manifest
//! stores them, so Rust never recomputes them.

#![allow(dead_code)]

pub mod golden;

// Not every test crate uses every helper.
#[allow(unused_imports)]
pub use golden::{Golden, assert_close, assert_close_shaped, compare_logits, compare_taps};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail, ensure};
use safetensors::Dtype;
use serde::Deserialize;
use sha2::{Digest, Sha256};

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const MIX1: u64 = 0xBF58_476D_1CE4_E5B9;
const MIX2: u64 = 0x94D0_49BB_1331_11EB;

/// Bumped whenever the generator's output changes, so stale checkpoints are rebuilt.
const GENERATOR_VERSION: &str = "1";

/// The raw splitmix64 output for element `index` of a tensor with `seed`.
pub fn prng_z(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_mul(GOLDEN_GAMMA).wrapping_add(index);
    z = z.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(MIX1);
    z = (z ^ (z >> 27)).wrapping_mul(MIX2);
    z ^ (z >> 31)
}

/// The f64 value `lo + (hi - lo) * u` of element `index`, before rounding to the dtype.
pub fn prng_f64(seed: u64, index: u64, lo: f64, hi: f64) -> f64 {
    let u = (prng_z(seed, index) >> 40) as f64 / (1u64 << 24) as f64;
    lo + (hi - lo) * u
}

/// 2^k as an f64, exactly (k within the normal range).
fn pow2(k: i32) -> f64 {
    assert!(
        (-1022..=1023).contains(&k),
        "2^{k} out of the normal f64 range"
    );
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Round `v` to a binary format with `p` significant bits and minimum normal exponent `emin`
/// (ties to even, one rounding); the result is exact in that format.
pub fn round_to_format(v: f64, p: i32, emin: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    // floor(log2 |v|) from the exponent field; f64 subnormals (far below both formats'
    // subnormal quantum) clamp to -1022, which the max with emin absorbs.
    let exp = (((v.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-1022);
    let q = exp.max(emin) - (p - 1);
    (v * pow2(-q)).round_ties_even() * pow2(q)
}

/// The dtype a manifest asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum WeightDtype {
    #[serde(rename = "f32")]
    F32,
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "bf16")]
    Bf16,
}

impl WeightDtype {
    pub fn safetensors(self) -> Dtype {
        match self {
            WeightDtype::F32 => Dtype::F32,
            WeightDtype::F16 => Dtype::F16,
            WeightDtype::Bf16 => Dtype::BF16,
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            WeightDtype::F32 => 4,
            WeightDtype::F16 | WeightDtype::Bf16 => 2,
        }
    }

    pub fn parse(name: &str) -> anyhow::Result<WeightDtype> {
        Ok(match name {
            "f32" => WeightDtype::F32,
            "f16" => WeightDtype::F16,
            "bf16" => WeightDtype::Bf16,
            other => bail!("unknown dtype {other:?} (expected f32, f16 or bf16)"),
        })
    }

    /// Round an f64 value to this dtype; returns the little-endian bit pattern (in the low
    /// bytes) and the value widened to f32, which is what a loader computing in f32 sees.
    pub fn encode(self, v: f64) -> (u32, f32) {
        match self {
            WeightDtype::F32 => {
                let f = v as f32;
                (f.to_bits(), f)
            }
            WeightDtype::F16 => {
                let r = round_to_format(v, 11, -14);
                assert!(r.abs() <= 65504.0, "{v} is out of f16 range");
                // Exact: r is representable in f16, so no second rounding happens here.
                let h = half::f16::from_f64(r);
                (h.to_bits() as u32, h.to_f32())
            }
            WeightDtype::Bf16 => {
                let r = round_to_format(v, 8, -126);
                let h = half::bf16::from_f64(r);
                assert!(h.is_finite(), "{v} is out of bf16 range");
                (h.to_bits() as u32, h.to_f32())
            }
        }
    }
}

/// `n` elements of a tensor in `dtype`, as little-endian bytes (what the checkpoint stores).
pub fn generate_bytes(seed: u64, lo: f64, hi: f64, n: usize, dtype: WeightDtype) -> Vec<u8> {
    let width = dtype.bytes();
    let mut out = Vec::with_capacity(n * width);
    for i in 0..n as u64 {
        let (bits, _) = dtype.encode(prng_f64(seed, i, lo, hi));
        out.extend_from_slice(&bits.to_le_bytes()[..width]);
    }
    out
}

/// `n` elements of a tensor in `dtype`, widened to f32 (what the PyTorch model ran with).
pub fn generate_f32(seed: u64, lo: f64, hi: f64, n: usize, dtype: WeightDtype) -> Vec<f32> {
    (0..n as u64)
        .map(|i| dtype.encode(prng_f64(seed, i, lo, hi)).1)
        .collect()
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One tensor's recipe.
#[derive(Debug, Clone, Deserialize)]
pub struct TensorRecipe {
    pub key: String,
    pub shape: Vec<usize>,
    pub seed: u64,
    pub lo: f64,
    pub hi: f64,
}

impl TensorRecipe {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// tests/golden/<fixture>.manifest.json.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub fixture: String,
    pub source: String,
    dtype: String,
    /// [N, 3, H, W] of the golden input.
    pub input_shape: Vec<usize>,
    /// In state-dict order.
    pub tensors: Vec<TensorRecipe>,
}

impl Manifest {
    pub fn load(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a golden manifest", path.display()))?;
        m.dtype()
            .with_context(|| format!("{}: bad dtype", path.display()))?;
        for t in &m.tensors {
            ensure!(
                t.lo.is_finite() && t.hi.is_finite() && t.lo <= t.hi,
                "{}: tensor {} has range [{}, {}]",
                path.display(),
                t.key,
                t.lo,
                t.hi
            );
        }
        Ok(m)
    }

    pub fn dtype(&self) -> anyhow::Result<WeightDtype> {
        WeightDtype::parse(&self.dtype)
    }
}

/// The repository's tests/golden/ folder.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The fixtures that have a manifest, sorted by name.
pub fn fixture_names() -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(golden_dir())? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".manifest.json") {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

pub fn manifest_path(fixture: &str) -> PathBuf {
    golden_dir().join(format!("{fixture}.manifest.json"))
}

pub fn golden_path(fixture: &str) -> PathBuf {
    golden_dir().join(format!("{fixture}.golden.safetensors"))
}

/// Where synthesised checkpoints go: `target/golden-weights/` (honouring CARGO_TARGET_DIR).
fn weights_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
    .join("golden-weights")
}

/// The checkpoint for a fixture and its golden file, ready to compare.
pub fn fixture(name: &str) -> anyhow::Result<(PathBuf, Golden)> {
    let checkpoint = synth_checkpoint(&manifest_path(name))?;
    let golden = Golden::load(&golden_path(name))?;
    Ok((checkpoint, golden))
}

/// One checkpoint build at a time in this process: tests run in parallel threads and would
/// otherwise all build the same 100 MB file at once.
static SYNTH_LOCK: Mutex<()> = Mutex::new(());

/// Build the checkpoint described by `manifest` into
/// `target/golden-weights/<fixture>.safetensors` (dtype from the manifest) and return its path.
/// An existing file is reused unless it is older than the manifest or was built from a
/// different manifest or generator version (both recorded in its metadata).
pub fn synth_checkpoint(manifest: &Path) -> anyhow::Result<PathBuf> {
    let manifest_bytes = std::fs::read(manifest)
        .with_context(|| format!("cannot read manifest {}", manifest.display()))?;
    let m = Manifest::load(manifest)?;
    let dtype = m.dtype()?;
    let dir = weights_dir();
    let out = dir.join(format!("{}.safetensors", m.fixture));
    let manifest_hash = sha256_hex(&manifest_bytes);

    let _guard = SYNTH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if is_fresh(&out, manifest, &manifest_hash)? {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let data: Vec<(String, Vec<u8>)> = m
        .tensors
        .iter()
        .map(|t| {
            let bytes = generate_bytes(t.seed, t.lo, t.hi, t.len(), dtype);
            (t.key.clone(), bytes)
        })
        .collect();
    let views = m
        .tensors
        .iter()
        .zip(&data)
        .map(|(t, (key, bytes))| {
            safetensors::tensor::TensorView::new(dtype.safetensors(), t.shape.clone(), bytes)
                .map(|v| (key.clone(), v))
                .with_context(|| format!("tensor {} {:?}", t.key, t.shape))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metadata = [
        ("fixture".to_string(), m.fixture.clone()),
        ("source".to_string(), m.source.clone()),
        ("manifest_sha256".to_string(), manifest_hash),
        (
            "generator_version".to_string(),
            GENERATOR_VERSION.to_string(),
        ),
    ]
    .into_iter()
    .collect();
    // Written under a unique name and renamed: another test process never sees half a file.
    let tmp = dir.join(format!(".{}.{}.tmp", m.fixture, std::process::id()));
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &out)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), out.display()))?;
    Ok(out)
}

/// Whether `out` exists, is not older than the manifest, and records the same manifest hash and
/// generator version.
fn is_fresh(out: &Path, manifest: &Path, manifest_hash: &str) -> anyhow::Result<bool> {
    let Ok(out_meta) = std::fs::metadata(out) else {
        return Ok(false);
    };
    let manifest_time = std::fs::metadata(manifest)?.modified()?;
    if out_meta.modified()? < manifest_time {
        return Ok(false);
    }
    let Ok(meta) = read_header_metadata(out) else {
        return Ok(false);
    };
    let get = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Ok(get("manifest_sha256").as_deref() == Some(manifest_hash)
        && get("generator_version").as_deref() == Some(GENERATOR_VERSION))
}

/// The `__metadata__` object of a safetensors file, read from its header only.
fn read_header_metadata(path: &Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    ensure!(len < 100 << 20, "{}: header of {len} bytes", path.display());
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header)?;
    let header: serde_json::Value = serde_json::from_slice(&header)?;
    match header.get("__metadata__") {
        Some(serde_json::Value::Object(m)) => Ok(m.clone()),
        _ => bail!("{}: no __metadata__", path.display()),
    }
}
