//! Every bad input of DESIGN.md through the real binary: a clear one-line error naming the file
//! and the problem, a non-zero exit, no panic, and the outputs of an earlier run in the same OUT
//! byte-identical afterwards. Odd but valid images decode and run.
//!
//! The checkpoints are variants of the bundled EfficientNet-Lite0 rewritten in the test
//! (truncated, corrupt, lying header, wrong dtype, missing or extra tensor, NaN, Inf); the odd
//! images come from tests/fixtures/make_odd_images.py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch/bad-input").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const EFFNET: &str = "models/efficientnet_lite0.safetensors";
/// Few taps keep each run to a second or two.
const TAPS: &str = "_blocks.15,_bn1";

fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Two bundled photos in a folder of their own.
fn two_photos(dir: &Path) -> PathBuf {
    let d = dir.join("photos");
    std::fs::create_dir_all(&d).unwrap();
    for p in ["coffee.png", "chelsea.png"] {
        std::fs::copy(root().join("models/images").join(p), d.join(p)).unwrap();
    }
    d
}

fn run_args<'a>(model: &'a str, input: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "run", "--quiet", "--model", model, "--input", input, "--out", out, "--taps", TAPS,
    ]
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A finished run in `dir/out` (the earlier outputs that must survive), and its snapshot.
fn earlier_run(dir: &Path) -> (PathBuf, BTreeMap<PathBuf, Vec<u8>>) {
    let photos = two_photos(dir);
    let out = dir.join("out");
    let model = root().join(EFFNET);
    let o = sparsescope(&run_args(
        &model.to_string_lossy(),
        &photos.to_string_lossy(),
        &out.to_string_lossy(),
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let snap = snapshot(&out);
    assert!(
        snap.len() > 10,
        "the earlier run wrote {} files",
        snap.len()
    );
    (out, snap)
}

/// The command fails with one line that contains every one of `expected`, and `out` is
/// unchanged byte for byte.
fn fails_cleanly(
    args: &[&str],
    expected: &[&str],
    out: &Path,
    before: &BTreeMap<PathBuf, Vec<u8>>,
) {
    let o = sparsescope(args);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert_ne!(o.status.code(), None, "killed by a signal: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    let after = snapshot(out);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "files of the earlier run changed"
    );
    for (p, bytes) in before {
        assert!(&after[p] == bytes, "{} changed", p.display());
    }
}

/// The bundled checkpoint rewritten: `edit` gets (name, dtype, shape, bytes) of every tensor and
/// may change, drop or add entries.
fn rewritten(
    path: &Path,
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> PathBuf {
    let bytes = std::fs::read(root().join(EFFNET)).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
    path.to_path_buf()
}

fn set_f32(t: &mut [(String, Dtype, Vec<usize>, Vec<u8>)], key: &str, index: usize, v: f32) {
    let e = t.iter_mut().find(|e| e.0 == key).unwrap();
    e.3[index * 4..index * 4 + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bad_checkpoints_fail_clearly_and_keep_earlier_outputs() {
    let dir = scratch("checkpoints");
    let (out, before) = earlier_run(&dir);
    let photos = dir.join("photos");
    let bundled = std::fs::read(root().join(EFFNET)).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bundled[..bundled.len() / 2]).unwrap();
    let corrupt = dir.join("corrupt.safetensors");
    let mut c = bundled[..4096].to_vec();
    c[8..200].fill(b'#');
    std::fs::write(&corrupt, c).unwrap();
    // The header promises more data than the file holds: the last 64 bytes are cut.
    let lying = dir.join("lying.safetensors");
    std::fs::write(&lying, &bundled[..bundled.len() - 64]).unwrap();
    let empty = dir.join("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    let int_weights = rewritten(&dir.join("int64.safetensors"), |t| {
        let e = t.iter_mut().find(|e| e.0 == "_fc.weight").unwrap();
        let n: usize = e.2.iter().product();
        e.1 = Dtype::I64;
        e.3 = vec![0u8; n * 8];
    });
    let missing = rewritten(&dir.join("missing.safetensors"), |t| {
        t.retain(|e| e.0 != "_fc.bias");
    });
    let nan = rewritten(&dir.join("nan.safetensors"), |t| {
        set_f32(t, "_conv_stem.weight", 5, f32::NAN)
    });
    let inf = rewritten(&dir.join("inf.safetensors"), |t| {
        set_f32(t, "_blocks.3._project_conv.weight", 7, f32::NEG_INFINITY)
    });
    let absent = dir.join("absent.safetensors");

    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            truncated,
            vec!["truncated.safetensors", "not a valid safetensors file"],
        ),
        (
            corrupt,
            vec!["corrupt.safetensors", "not a valid safetensors file"],
        ),
        (
            lying,
            vec!["lying.safetensors", "not a valid safetensors file"],
        ),
        (
            empty,
            vec!["empty.safetensors", "not a valid safetensors file"],
        ),
        (int_weights, vec!["int64.safetensors", "_fc.weight", "I64"]),
        (missing, vec!["missing.safetensors", "_fc.bias", "missing"]),
        (nan, vec!["nan.safetensors", "_conv_stem.weight", "NaN"]),
        (
            inf,
            vec!["inf.safetensors", "_blocks.3._project_conv.weight", "inf"],
        ),
        (absent, vec!["absent.safetensors", "cannot open"]),
    ];
    for (model, expected) in cases {
        let m = model.to_string_lossy().into_owned();
        let args = run_args(&m, photos.to_str().unwrap(), out.to_str().unwrap());
        fails_cleanly(&args, &expected, &out, &before);
    }
}

/// An unused extra tensor is not an error: the run goes on, with a warning naming it.
#[test]
fn an_extra_tensor_is_a_warning() {
    let dir = scratch("extra");
    let photos = two_photos(&dir);
    let extra = rewritten(&dir.join("extra.safetensors"), |t| {
        t.push((
            "head.extra.weight".into(),
            Dtype::F32,
            vec![2],
            vec![0u8; 8],
        ));
    });
    let out = dir.join("out");
    let o = sparsescope(&run_args(
        &extra.to_string_lossy(),
        &photos.to_string_lossy(),
        &out.to_string_lossy(),
    ));
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("head.extra.weight"),
        "no warning naming the tensor: {err}"
    );
}

#[test]
fn odd_but_valid_images_all_run() {
    let dir = scratch("odd-images");
    let images = root().join("tests/fixtures/odd_images");
    let out = dir.join("out");
    let o = sparsescope(&[
        "run",
        "--quiet",
        "--strict",
        "--model",
        &root().join(EFFNET).to_string_lossy(),
        "--input",
        &images.to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
        "--taps",
        TAPS,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = std::fs::read_to_string(out.join("images.txt")).unwrap();
    for f in [
        "cmyk.jpg",
        "progressive.jpg",
        "palette.png",
        "grey.png",
        "grey16.png",
        "one_pixel.png",
        "rgba.png",
    ] {
        assert!(listed.contains(f), "{f} not in images.txt: {listed}");
    }
}

#[test]
fn bad_images_are_skipped_and_listed_or_fatal_with_strict() {
    let dir = scratch("images");
    let (out, before) = earlier_run(&dir);
    let photos = dir.join("photos");
    let model = root().join(EFFNET).to_string_lossy().into_owned();
    std::fs::write(photos.join("zero.jpg"), b"").unwrap();
    std::fs::write(photos.join("notes.jpg"), b"this is text, not a JPEG").unwrap();

    // --strict: the first unreadable image stops the run; the earlier outputs stay.
    let mut args = run_args(&model, photos.to_str().unwrap(), out.to_str().unwrap());
    args.push("--strict");
    fails_cleanly(&args, &["notes.jpg", "--strict"], &out, &before);

    // Without it: skipped with a warning each, listed in the summary, the rest computed.
    let out2 = dir.join("out2");
    let o = sparsescope(&run_args(
        &model,
        photos.to_str().unwrap(),
        out2.to_str().unwrap(),
    ));
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for f in ["zero.jpg", "notes.jpg"] {
        assert!(err.contains("skipped") && err.contains(f), "{err}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out2.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["inputs"]["images"], 2);
    let skipped = summary["inputs"]["skipped"].to_string();
    assert!(
        skipped.contains("zero.jpg") && skipped.contains("notes.jpg"),
        "{skipped}"
    );
}

#[test]
fn bad_folders_and_outputs_fail_clearly() {
    let dir = scratch("folders");
    let (out, before) = earlier_run(&dir);
    let model = root().join(EFFNET).to_string_lossy().into_owned();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    fails_cleanly(
        &run_args(&model, empty.to_str().unwrap(), out.to_str().unwrap()),
        &["empty", "no images"],
        &out,
        &before,
    );
    fails_cleanly(
        &run_args(
            &model,
            dir.join("nowhere").to_str().unwrap(),
            out.to_str().unwrap(),
        ),
        &["nowhere"],
        &out,
        &before,
    );
    // An output folder that cannot be created (under a regular file; root ignores modes).
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let bad_out = blocker.join("out");
    let photos = dir.join("photos");
    let o = sparsescope(&run_args(
        &model,
        photos.to_str().unwrap(),
        bad_out.to_str().unwrap(),
    ));
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("blocker") && err.contains("cannot create"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A tap that does not exist.
    let mut args = run_args(&model, photos.to_str().unwrap(), out.to_str().unwrap());
    let taps = args.iter().position(|a| *a == TAPS).unwrap();
    args[taps] = "_blocks.99";
    fails_cleanly(&args, &["_blocks.99", "does not exist"], &out, &before);
}

/// A full disk, simulated with a file-size limit (RLIMIT_FSIZE) and SIGXFSZ ignored, so writes
/// past the limit fail with EFBIG as they would with ENOSPC: the run fails with a message naming
/// the file it could not write, and the earlier outputs stay whole (files are written to a
/// temporary name and renamed).
#[test]
fn a_full_disk_fails_clearly_and_keeps_earlier_outputs() {
    let dir = scratch("full-disk");
    let (out, before) = earlier_run(&dir);
    let photos = dir.join("photos");
    let model = root().join(EFFNET).to_string_lossy().into_owned();
    let script = format!(
        "trap '' XFSZ; ulimit -f 8; exec '{}' {}",
        env!("CARGO_BIN_EXE_sparsescope"),
        run_args(&model, photos.to_str().unwrap(), out.to_str().unwrap())
            .iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let o = Command::new("bash").args(["-c", &script]).output().unwrap();
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "succeeded under a 8 KiB file-size limit"
    );
    assert_ne!(o.status.code(), None, "killed by a signal: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("File too large") || err.contains("file too large"),
        "{err}"
    );
    assert!(err.contains(out.to_str().unwrap()), "no file named: {err}");
    let after = snapshot(&out);
    for (p, bytes) in &before {
        assert!(after.get(p) == Some(bytes), "{} changed", p.display());
    }
    // Temporary files of the failed write do not linger under their final names.
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after
            .keys()
            .filter(|p| !p.to_string_lossy().contains(".tmp"))
            .collect::<Vec<_>>()
    );
}
