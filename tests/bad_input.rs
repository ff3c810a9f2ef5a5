//! Every bad input of DESIGN.md "Behaviour users rely on", through the real binary: a one-line
//! error naming the file and the problem, a non-zero exit, no panic, and earlier outputs in OUT
//! byte-identical afterwards. The model is a one-block ViT (width 64, 2x2 patches of 16 pixels)
//! written by the test itself, so each case takes about a second.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::Dtype;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch/bad-input").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .expect("run sparsescope")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expect failure with one `error:` line holding every needle.
fn assert_fails(o: &Output, needles: &[&str]) -> String {
    let e = stderr(o);
    assert!(!o.status.success(), "succeeded; stderr: {e}");
    assert_eq!(o.status.code(), Some(1), "exit status {:?}: {e}", o.status);
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        e.starts_with("error: ") && e.lines().count() == 1,
        "not one error line: {e}"
    );
    for n in needles {
        assert!(e.contains(n), "error lacks '{n}': {e}");
    }
    e
}

const DIM: usize = 64;
const HIDDEN: usize = 128;
const PATCH: usize = 16;
const TOKENS: usize = 5;
const CLASSES: usize = 10;

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

/// A timm-named ViT: depth 1, width 64 (one head), 32x32 input, 10-class head; small
/// deterministic weights.
fn tiny_vit() -> Tensors {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("cls_token", vec![1, 1, DIM]),
        ("pos_embed", vec![1, TOKENS, DIM]),
        ("patch_embed.proj.weight", vec![DIM, 3, PATCH, PATCH]),
        ("patch_embed.proj.bias", vec![DIM]),
        ("blocks.0.norm1.weight", vec![DIM]),
        ("blocks.0.norm1.bias", vec![DIM]),
        ("blocks.0.attn.qkv.weight", vec![3 * DIM, DIM]),
        ("blocks.0.attn.qkv.bias", vec![3 * DIM]),
        ("blocks.0.attn.proj.weight", vec![DIM, DIM]),
        ("blocks.0.attn.proj.bias", vec![DIM]),
        ("blocks.0.norm2.weight", vec![DIM]),
        ("blocks.0.norm2.bias", vec![DIM]),
        ("blocks.0.mlp.fc1.weight", vec![HIDDEN, DIM]),
        ("blocks.0.mlp.fc1.bias", vec![HIDDEN]),
        ("blocks.0.mlp.fc2.weight", vec![DIM, HIDDEN]),
        ("blocks.0.mlp.fc2.bias", vec![DIM]),
        ("norm.weight", vec![DIM]),
        ("norm.bias", vec![DIM]),
        ("head.weight", vec![CLASSES, DIM]),
        ("head.bias", vec![CLASSES]),
    ];
    let mut out = Tensors::new();
    for (k, (name, shape)) in shapes.into_iter().enumerate() {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| {
                if name.ends_with("norm1.weight")
                    || name.ends_with("norm2.weight")
                    || name == "norm.weight"
                {
                    1.0
                } else {
                    (((i * 7 + k * 13) % 17) as f32 - 8.0) * 0.01
                }
            })
            .collect();
        out.insert(
            name.to_string(),
            (Dtype::F32, shape, bytemuck::cast_slice(&values).to_vec()),
        );
    }
    out
}

fn write_checkpoint(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, (d, s, b))| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn good_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("tiny_vit.safetensors");
    write_checkpoint(&path, &tiny_vit());
    path
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A folder of three good RGB images of different sizes.
fn good_images(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for (i, (w, h)) in [(40u32, 36u32), (32, 32), (50, 30)].into_iter().enumerate() {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 7) as u8, (i * 80) as u8])
        });
        img.save(images.join(format!("good{i}.png"))).unwrap();
    }
    images
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
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// `run` of the tiny model over `images` into `out`, expecting success.
fn run_ok(model: &Path, images: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--quiet",
        "--batch",
        "2",
        "--model",
        model.to_str().unwrap(),
        "--input",
        images.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = sparsescope(&args);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    o
}

/// An OUT folder holding a finished run over one image (so that a later run over other images
/// would write different bytes everywhere), with its snapshot.
fn earlier_run(dir: &Path, model: &Path) -> (PathBuf, BTreeMap<PathBuf, Vec<u8>>) {
    let one = dir.join("one-image");
    std::fs::create_dir_all(&one).unwrap();
    image::RgbImage::from_fn(33, 33, |x, y| image::Rgb([(x * y) as u8, 9, 200]))
        .save(one.join("earlier.png"))
        .unwrap();
    let out = dir.join("out");
    run_ok(model, &one, &out, &[]);
    let snap = snapshot(&out);
    assert!(snap.len() > 5, "the earlier run wrote {} files", snap.len());
    (out, snap)
}

fn assert_unchanged(out: &Path, before: &BTreeMap<PathBuf, Vec<u8>>) {
    let after = snapshot(out);
    let before_names: Vec<_> = before.keys().collect();
    let after_names: Vec<_> = after.keys().collect();
    assert_eq!(before_names, after_names, "files in OUT changed");
    for (k, v) in before {
        assert!(&after[k] == v, "{} changed", k.display());
    }
}

fn inspect(model: &Path) -> Output {
    sparsescope(&["inspect", model.to_str().unwrap()])
}

// ---- checkpoints -------------------------------------------------------------------------------

#[test]
fn the_tiny_model_itself_loads() {
    let dir = scratch("good");
    let o = inspect(&good_checkpoint(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("blocks.0"));
}

#[test]
fn truncated_safetensors() {
    let dir = scratch("truncated");
    let good = std::fs::read(good_checkpoint(&dir)).unwrap();
    for (name, keep) in [
        ("head.safetensors", 4),
        ("half.safetensors", good.len() / 2),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &good[..keep]).unwrap();
        assert_fails(&inspect(&path), &[name, "truncated"]);
    }
}

#[test]
fn corrupt_header_not_json() {
    let dir = scratch("corrupt");
    let mut bytes = std::fs::read(good_checkpoint(&dir)).unwrap();
    bytes[8..20].copy_from_slice(b"this is not ");
    let path = dir.join("corrupt.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    assert_fails(
        &inspect(&path),
        &["corrupt.safetensors", "not a valid safetensors"],
    );
}

/// Replace the JSON header of a safetensors file, keeping the data.
fn with_header(bytes: &[u8], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header);
    let text = serde_json::to_vec(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

#[test]
fn header_lies_about_offsets_or_sizes() {
    let dir = scratch("lies");
    let good = std::fs::read(good_checkpoint(&dir)).unwrap();
    // The last tensor's end offset points past the end of the file.
    let past_end = with_header(&good, |h| {
        let (key, end) = h
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "__metadata__")
            .map(|(k, v)| (k.clone(), v["data_offsets"][1].as_u64().unwrap()))
            .max_by_key(|(_, e)| *e)
            .unwrap();
        h[&key]["data_offsets"][1] = (end + 4096).into();
    });
    let path = dir.join("past_end.safetensors");
    std::fs::write(&path, &past_end).unwrap();
    assert_fails(&inspect(&path), &["past_end.safetensors", "truncated"]);
    // A shape whose element count disagrees with its byte range.
    let wrong_size = with_header(&good, |h| {
        h["norm.bias"]["shape"] = serde_json::json!([DIM * 2]);
    });
    let path = dir.join("wrong_size.safetensors");
    std::fs::write(&path, &wrong_size).unwrap();
    assert_fails(&inspect(&path), &["wrong_size.safetensors", "not a valid"]);
    // A header length larger than the file.
    let mut huge = good.clone();
    huge[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = dir.join("huge_header.safetensors");
    std::fs::write(&path, &huge).unwrap();
    assert_fails(&inspect(&path), &["huge_header.safetensors", "not a valid"]);
}

#[test]
fn wrong_dtype_int64_weights() {
    let dir = scratch("dtype");
    let mut t = tiny_vit();
    let values: Vec<i64> = (0..(DIM * DIM) as i64).collect();
    t.insert(
        "blocks.0.attn.proj.weight".into(),
        (
            Dtype::I64,
            vec![DIM, DIM],
            bytemuck::cast_slice(&values).to_vec(),
        ),
    );
    let path = dir.join("int64.safetensors");
    write_checkpoint(&path, &t);
    assert_fails(
        &inspect(&path),
        &["int64.safetensors", "blocks.0.attn.proj.weight", "I64"],
    );
}

#[test]
fn missing_tensor() {
    let dir = scratch("missing");
    let mut t = tiny_vit();
    t.remove("blocks.0.mlp.fc2.weight");
    let path = dir.join("missing.safetensors");
    write_checkpoint(&path, &t);
    assert_fails(
        &inspect(&path),
        &["missing.safetensors", "blocks.0.mlp.fc2.weight", "missing"],
    );
}

/// An extra tensor the architecture does not use is accepted (checkpoints carry buffers such as
/// `num_batches_tracked` and auxiliary heads); the model runs on the tensors it knows.
#[test]
fn extra_unused_tensor_is_accepted() {
    let dir = scratch("extra");
    let mut t = tiny_vit();
    t.insert(
        "aux_head.weight".into(),
        (Dtype::F32, vec![4], vec![0u8; 16]),
    );
    let path = dir.join("extra.safetensors");
    write_checkpoint(&path, &t);
    let o = inspect(&path);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn nan_and_inf_in_weights() {
    let dir = scratch("nonfinite");
    for (name, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let mut t = tiny_vit();
        let entry = t.get_mut("blocks.0.mlp.fc1.weight").unwrap();
        entry.2[40..44].copy_from_slice(&bad.to_le_bytes());
        let path = dir.join(format!("{name}.safetensors"));
        write_checkpoint(&path, &t);
        assert_fails(
            &inspect(&path),
            &[
                &format!("{name}.safetensors"),
                "blocks.0.mlp.fc1.weight",
                "non-finite",
                "index 10",
            ],
        );
    }
}

#[test]
fn weights_beyond_f16_range_with_f16_weights() {
    let dir = scratch("beyond-f16");
    let mut t = tiny_vit();
    let entry = t.get_mut("blocks.0.mlp.fc1.weight").unwrap();
    entry.2[40..44].copy_from_slice(&1.0e5f32.to_le_bytes());
    let path = dir.join("big.safetensors");
    write_checkpoint(&path, &t);
    let o = inspect(&path);
    assert!(o.status.success(), "f32 storage holds 1e5: {}", stderr(&o));
    assert_fails(
        &sparsescope(&["inspect", &s(&path), "--f16-weights"]),
        &[
            "big.safetensors",
            "blocks.0.mlp.fc1.weight",
            "holds 100000, beyond f16's range",
            "without --f16-weights",
        ],
    );
}

// ---- images ------------------------------------------------------------------------------------

/// crc32 (IEEE), for hand-made PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG of 20000 x 20000 RGB pixels as far as its header says; its data is one tiny IDAT that
/// a decoder would have to inflate into 1.2 GB. Refused from the header alone.
fn huge_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&20000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    png
}

/// Odd images that must decode, and the images that cannot.
fn odd_images(dir: &Path) -> PathBuf {
    let images = good_images(dir);
    let fixtures = root().join("tests/bad_input");
    for f in ["cmyk.jpg", "progressive.jpg", "palette.png"] {
        std::fs::copy(fixtures.join(f), images.join(f)).unwrap();
    }
    image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(9, 7, |x, y| {
        image::Rgb([x as u16 * 7000, y as u16 * 9000, 40000])
    })
    .save(images.join("rgb16.png"))
    .unwrap();
    image::GrayImage::from_fn(12, 10, |x, y| image::Luma([(x * 20 + y) as u8]))
        .save(images.join("grey.png"))
        .unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 30]))
        .save(images.join("one_pixel.png"))
        .unwrap();
    images
}

const DECODABLE: usize = 3 + 6;

fn add_unreadable(images: &Path) -> Vec<&'static str> {
    std::fs::write(images.join("huge.png"), huge_png()).unwrap();
    std::fs::write(images.join("zero.jpg"), b"").unwrap();
    std::fs::write(images.join("text.jpg"), b"hello, I am not a JPEG\n").unwrap();
    vec!["huge.png", "text.jpg", "zero.jpg"]
}

#[test]
fn odd_images_decode_and_unreadable_ones_are_skipped_and_listed() {
    let dir = scratch("odd-images");
    let model = good_checkpoint(&dir);
    let images = odd_images(&dir);
    let bad = add_unreadable(&images);
    let out = dir.join("out");
    let o = run_ok(&model, &images, &out, &[]);
    let err = stderr(&o);
    for (name, why) in bad.iter().zip([
        "20000 x 20000 = 400.0 megapixels, over the limit of 100 megapixels",
        "not an image",
        "empty file (0 bytes)",
    ]) {
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning: skipped") && l.contains(name) && l.contains(why)),
            "no warning for {name} ({why}): {err}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["inputs"]["images"], DECODABLE);
    let skipped: Vec<String> = summary["inputs"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for name in &bad {
        assert!(skipped.iter().any(|p| p.ends_with(name)), "{skipped:?}");
    }
    let listed = std::fs::read_to_string(out.join("images.txt")).unwrap();
    for name in [
        "cmyk.jpg",
        "progressive.jpg",
        "palette.png",
        "rgb16.png",
        "grey.png",
        "one_pixel.png",
    ] {
        assert!(listed.contains(name), "{name} not in images.txt");
    }
    // No statistic is NaN: the odd images went through preprocessing to finite values.
    let (_, pooled) =
        sparsescope::npy::read_npy::<f32>(out.join("taps/blocks.0/pooled.npy")).unwrap();
    assert_eq!(pooled.len(), DECODABLE * DIM);
    assert!(pooled.iter().all(|v| v.is_finite()));
}

#[test]
fn each_unreadable_image_is_fatal_with_strict_and_earlier_outputs_survive() {
    let dir = scratch("strict");
    let model = good_checkpoint(&dir);
    let (out, before) = earlier_run(&dir, &model);
    for (file, bytes, why) in [
        ("huge.png", huge_png(), "over the limit of 100 megapixels"),
        ("zero.jpg", Vec::new(), "empty file"),
        ("text.jpg", b"plain text".to_vec(), "not an image"),
    ] {
        let case = dir.join(format!("case-{file}"));
        let images = good_images(&case);
        std::fs::write(images.join(file), bytes).unwrap();
        let o = sparsescope(&[
            "run",
            "--quiet",
            "--strict",
            "--model",
            &s(&model),
            "--input",
            &s(&images),
            "--out",
            &s(&out),
        ]);
        assert_fails(&o, &[file, why, "--strict"]);
        assert_unchanged(&out, &before);
    }
}

// ---- folders, taps, output -------------------------------------------------------------------

#[test]
fn empty_folder() {
    let dir = scratch("empty");
    let model = good_checkpoint(&dir);
    let (out, before) = earlier_run(&dir, &model);
    let empty = dir.join("nothing-here");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not an image").unwrap();
    for cmd in ["run", "extract"] {
        let o = sparsescope(&[
            cmd,
            "--quiet",
            "--model",
            &s(&model),
            "--input",
            &s(&empty),
            "--out",
            &s(&out),
        ]);
        assert_fails(&o, &["nothing-here", "no images found"]);
        assert_unchanged(&out, &before);
    }
}

#[test]
fn tap_that_does_not_exist() {
    let dir = scratch("tap");
    let model = good_checkpoint(&dir);
    let images = good_images(&dir);
    let (out, before) = earlier_run(&dir, &model);
    for cmd in ["run", "extract"] {
        let o = sparsescope(&[
            cmd,
            "--quiet",
            "--model",
            &s(&model),
            "--input",
            &s(&images),
            "--taps",
            "blocks.7",
            "--out",
            &s(&out),
        ]);
        assert_fails(&o, &["tap 'blocks.7' does not exist"]);
        assert_unchanged(&out, &before);
    }
}

#[test]
fn unwritable_output_folder() {
    let dir = scratch("unwritable");
    let model = good_checkpoint(&dir);
    let images = good_images(&dir);
    // A folder cannot be made under a regular file, whoever runs the test (root included).
    let blocker = dir.join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("out");
    for cmd in ["run", "extract"] {
        let o = sparsescope(&[
            cmd,
            "--quiet",
            "--model",
            &s(&model),
            "--input",
            &s(&images),
            "--out",
            &s(&out),
        ]);
        assert_fails(&o, &["a-file/out", "cannot create the output folder"]);
    }
}

/// A full disk, simulated by RLIMIT_FSIZE (`ulimit -f`, no root needed): a write past the limit
/// fails with EFBIG as it would with ENOSPC. SIGXFSZ is ignored in the shell so that the
/// failed write returns an error instead of killing the process (ignored signals survive exec).
fn run_with_file_limit(kib: u32, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_sparsescope");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {kib}; exec '{bin}' {}",
            quoted.join(" ")
        ))
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .output()
        .expect("run bash")
}

#[test]
fn full_disk_during_run_leaves_earlier_outputs_whole() {
    let dir = scratch("full-run");
    let model = good_checkpoint(&dir);
    let (out, before) = earlier_run(&dir, &model);
    let images = good_images(&dir);
    // 2 KiB: the per-channel arrays of 128 channels (1.1 KiB) fit and are finished first; the
    // 256-bin histogram (2.1 KiB) is not.
    let o = run_with_file_limit(
        2,
        &[
            "run",
            "--quiet",
            "--model",
            &s(&model),
            "--input",
            &s(&images),
            "--out",
            &s(&out),
        ],
    );
    assert_fails(&o, &["hist", "File too large"]);
    assert_unchanged(&out, &before);
}

#[test]
fn full_disk_during_extract_leaves_earlier_outputs_whole() {
    let dir = scratch("full-extract");
    let model = good_checkpoint(&dir);
    let images = good_images(&dir);
    let out = dir.join("out");
    let args = [
        "extract",
        "--quiet",
        "--model",
        &s(&model),
        "--input",
        &s(&images),
        "--out",
        &s(&out),
    ];
    let o = sparsescope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // Make the earlier files differ from what the next extract writes.
    let logits = out.join("logits.npy");
    let mut bytes = std::fs::read(&logits).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&logits, bytes).unwrap();
    let before = snapshot(&out);
    // blocks.0.npy is 3 x 5 x 64 floats = 3.8 KiB; the logits (120 bytes) fit in 2 KiB.
    let o = run_with_file_limit(2, &args);
    assert_fails(&o, &["blocks.0", "File too large"]);
    assert_unchanged(&out, &before);
}
