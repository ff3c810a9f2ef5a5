//! Image input against PIL/timm, plus folder scanning, batching and error cases.
//!
//! The golden files come from tests/golden/make_preprocess_golden.py (Pillow 13.0.0, timm 1.0.31):
//! timm's `create_transform(...)` eval transform applied to `Image.open(p).convert('RGB')`.
//!
//! Tolerances, and why:
//! - uint8 after resize + centre crop: our resize is PIL's integer algorithm, so for losslessly
//!   stored inputs (PNG, also greyscale, RGBA, palette and 16-bit) every byte must be equal, and
//!   is. JPEG inputs differ before the resize: zune-jpeg (the `image` crate's decoder) and
//!   libjpeg-turbo (PIL's) use different IDCT and colour-conversion rounding, and zune-jpeg's
//!   chroma upsampling rounds twice with a +1/2 bias where libjpeg-turbo's "fancy" upsampling
//!   alternates its rounding. Decoded pixels differ by up to 4 levels (0.7% of values for a 4:4:4
//!   JPEG, 19% for a 4:2:0 one, mean bias about +0.2 level in red and blue). After the resize
//!   (measured with this commit's fixtures): squirrel.jpg (4:2:0) up to 26.3% of values differ,
//!   dog.jpg (4:2:2) up to 10.8%, never by more than 2 levels, mean bias below +0.15 level.
//!   (At 224 with crop_pct 0.875 on all bundled JPEGs: 0.9-27% differ, max 3 levels.)
//!   The JPEG bounds below are those measured values with a little room, so a regression in the
//!   resize (which would hit the PNG cases exactly) or in the decoder shows.
//! - floats: torchvision computes (v / 255 - mean) / std in f32, as we do, so equal uint8 give
//!   bit-equal floats; a value whose uint8 differs by k levels may differ by k / 255 / std.
//!   We allow exactly that, plus 1e-6.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sparsescope::data::{
    self, Batch, BatchLoader, BatchSource, ImageSet, Interpolation, Normalization, NpyBatches,
    Preprocess,
};
use sparsescope::npy;

/// JPEG cases (see the module comment): largest uint8 difference from PIL, largest share of
/// differing values, largest mean signed difference.
const JPEG_MAX_LEVELS: i32 = 2;
const JPEG_MAX_SHARE: f64 = 0.30;
const JPEG_MAX_BIAS: f64 = 0.2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden_dir() -> PathBuf {
    root().join("tests/golden/preprocess")
}

fn manifest() -> Value {
    let path = golden_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run tests/golden/make_preprocess_golden.py",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

fn preprocess_for(case: &Value) -> Preprocess {
    let crop = case["crop"].as_u64().unwrap() as u32;
    let crop_pct = case["crop_pct"].as_f64().unwrap();
    let interp: Interpolation = case["interpolation"].as_str().unwrap().parse().unwrap();
    let p = match case["normalization"].as_str().unwrap() {
        "imagenet" => Preprocess::imagenet(crop, crop_pct, interp),
        "inception" => Preprocess::inception(crop, crop_pct, interp),
        "tflite" => Preprocess::efficientnet_lite_tf(crop, crop_pct, interp),
        other => panic!("unknown normalisation {other}"),
    }
    .unwrap();
    // The presets must carry the constants the golden script took from timm.
    if let Normalization::MeanStd { mean, std } = p.normalization {
        for c in 0..3 {
            assert_eq!(mean[c], case["mean"][c].as_f64().unwrap() as f32);
            assert_eq!(std[c], case["std"][c].as_f64().unwrap() as f32);
        }
    }
    p
}

struct Agreement {
    values: usize,
    differing: usize,
    max_levels: i32,
    /// Mean of ours - PIL, in levels.
    bias: f64,
}

fn compare_u8(ours: &[u8], pil: &[u8]) -> Agreement {
    assert_eq!(ours.len(), pil.len());
    let mut a = Agreement {
        values: ours.len(),
        differing: 0,
        max_levels: 0,
        bias: 0.0,
    };
    let mut sum = 0i64;
    for (&x, &y) in ours.iter().zip(pil) {
        sum += x as i64 - y as i64;
        let d = (x as i32 - y as i32).abs();
        if d > 0 {
            a.differing += 1;
            a.max_levels = a.max_levels.max(d);
        }
    }
    a.bias = sum as f64 / ours.len() as f64;
    a
}

#[test]
fn matches_pil_and_timm() {
    let m = manifest();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() >= 20, "manifest lists {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let image = root().join(case["image"].as_str().unwrap());
        let bytes = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
        assert_eq!(
            bytes,
            case["image_bytes"].as_u64().unwrap(),
            "{}: input image changed since the fixtures were made; rerun tests/golden/make_preprocess_golden.py",
            image.display()
        );
        let is_jpeg = image.extension().is_some_and(|e| e == "jpg");
        let p = preprocess_for(case);

        let rgb = data::load_rgb8(&image).unwrap();
        let src = case["source_size"].as_array().unwrap();
        assert_eq!(
            (rgb.width() as u64, rgb.height() as u64),
            (src[0].as_u64().unwrap(), src[1].as_u64().unwrap()),
            "{name}: decoded size"
        );
        let rs = case["resized_size"].as_array().unwrap();
        assert_eq!(
            p.resized_dims(rgb.width(), rgb.height()),
            (
                rs[0].as_u64().unwrap() as u32,
                rs[1].as_u64().unwrap() as u32
            ),
            "{name}: resized size"
        );

        // uint8 after resize + crop.
        let (shape, pil_u8) =
            npy::read_npy::<u8>(golden_dir().join(case["u8"].as_str().unwrap())).unwrap();
        let crop = p.crop_size as usize;
        assert_eq!(shape, vec![crop, crop, 3]);
        let ours = p.resize_crop(&rgb);
        let a = compare_u8(ours.as_raw(), &pil_u8);
        let share = a.differing as f64 / a.values as f64;
        println!(
            "{name:12} uint8: {} of {} values differ ({:.3}%), max {} levels, mean {:+.3}",
            a.differing,
            a.values,
            100.0 * share,
            a.max_levels,
            a.bias
        );
        let u8_ok = if is_jpeg {
            a.max_levels <= JPEG_MAX_LEVELS
                && share <= JPEG_MAX_SHARE
                && a.bias.abs() <= JPEG_MAX_BIAS
        } else {
            a.differing == 0
        };
        if !u8_ok {
            failures.push(format!(
                "{name}: uint8 differs from PIL in {} of {} values, max {} levels, mean {:+.3}",
                a.differing, a.values, a.max_levels, a.bias
            ));
        }

        // Floats: the whole pipeline, through the public entry point.
        let ours_f = data::load_image(&image, &p).unwrap();
        assert_eq!(ours_f.len(), 3 * crop * crop);
        let (reference, std): (Vec<f32>, [f32; 3]) = match (case["f32"].as_str(), p.normalization) {
            (Some(file), Normalization::MeanStd { std, .. }) => {
                let (shape, v) = npy::read_npy_f32(golden_dir().join(file)).unwrap();
                assert_eq!(shape, vec![3, crop, crop]);
                (v, std)
            }
            (None, Normalization::TfLite) => {
                // By definition (x - 127) / 128 of PIL's uint8 crop.
                let mut v = vec![0f32; 3 * crop * crop];
                for (i, px) in pil_u8.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        v[c * crop * crop + i] = (px[c] as f32 - 127.0) / 128.0;
                    }
                }
                (v, [128.0 / 255.0; 3])
            }
            (None, _) => continue,
            (Some(_), Normalization::TfLite) => panic!("{name}: unexpected float fixture"),
        };
        for (i, (&x, &y)) in ours_f.iter().zip(&reference).enumerate() {
            let c = i / (crop * crop);
            let px = i % (crop * crop);
            let levels = (ours.as_raw()[px * 3 + c] as i32 - pil_u8[px * 3 + c] as i32).abs();
            let tol = levels as f32 / 255.0 / std[c] + 1e-6;
            let err = (x - y).abs();
            if err > tol {
                failures.push(format!(
                    "{name}: float at channel {c} pixel {px}: ours {x}, timm {y}, tolerance {tol}"
                ));
                break;
            }
        }
        let max_err = ours_f
            .iter()
            .zip(&reference)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        println!("{name:12} f32:   max |ours - timm| = {max_err:.3e}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn sixteen_bit_grey_keeps_the_high_byte() {
    // PIL would clip 16-bit grey values above 255 to white; we keep the high byte (documented).
    let img = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(3, 2, |x, y| {
        image::Luma([(x * 20000 + y * 300) as u16])
    });
    let rgb = data::to_rgb8(image::DynamicImage::ImageLuma16(img.clone()));
    for (x, y, px) in rgb.enumerate_pixels() {
        let v = (img.get_pixel(x, y).0[0] >> 8) as u8;
        assert_eq!(px.0, [v, v, v]);
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sparsescope-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 + seed as u32) as u8,
            (y * 5) as u8,
            seed.wrapping_mul(31),
        ])
    });
    img.save(path).unwrap();
}

fn err_text<T>(r: sparsescope::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn folder_layouts() {
    // Unlabelled: images at the top, other files and hidden files ignored, sorted by name.
    let dir = scratch("flat");
    write_png(&dir.join("b.PNG"), 4, 4, 1);
    write_png(&dir.join("a.png"), 4, 4, 2);
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    write_png(&dir.join(".hidden.png"), 4, 4, 3);
    std::fs::create_dir(dir.join("empty_sub")).unwrap();
    let set = ImageSet::from_folder(&dir).unwrap();
    let names: Vec<_> = set
        .entries
        .iter()
        .map(|e| e.relative.to_str().unwrap())
        .collect();
    assert_eq!(names, ["a.png", "b.PNG"]);
    assert!(!set.has_labels());
    assert_eq!(set.label_name(0), None);

    // Labelled: one sub-folder per class, classes sorted, images grouped by class.
    let dir = scratch("classes");
    for (class, file) in [
        ("zebra", "1.jpg"),
        ("cat", "b.png"),
        ("cat", "a.png"),
        ("dog", "x.webp"),
    ] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        std::fs::write(dir.join(class).join(file), b"").unwrap();
    }
    std::fs::create_dir_all(dir.join("no_images")).unwrap();
    std::fs::write(dir.join("no_images/readme.md"), "x").unwrap();
    let set = ImageSet::from_folder(&dir).unwrap();
    assert_eq!(set.classes, ["cat", "dog", "zebra"]);
    let got: Vec<_> = (0..set.len())
        .map(|i| {
            (
                set.entries[i].relative.to_str().unwrap().to_string(),
                set.label_name(i).unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("cat/a.png", "cat"),
        ("cat/b.png", "cat"),
        ("dog/x.webp", "dog"),
        ("zebra/1.jpg", "zebra"),
    ];
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(Path::new(&g.0), Path::new(w.0));
        assert_eq!(g.1, w.1);
    }
    assert_eq!(set.entries[3].label, Some(2));

    // Mixed: ambiguous, refused with an explanation naming the folder.
    std::fs::write(dir.join("stray.jpg"), b"").unwrap();
    let msg = err_text(ImageSet::from_folder(&dir));
    assert!(
        msg.contains(dir.to_str().unwrap())
            && msg.contains("stray.jpg")
            && msg.contains("sub-folders"),
        "{msg}"
    );

    // Empty, missing, not a folder.
    let empty = scratch("empty");
    let msg = err_text(ImageSet::from_folder(&empty));
    assert!(
        msg.contains(empty.to_str().unwrap()) && msg.contains("no images"),
        "{msg}"
    );
    let msg = err_text(ImageSet::from_folder(empty.join("missing")));
    assert!(
        msg.contains("missing") && msg.contains("cannot open"),
        "{msg}"
    );
    std::fs::write(empty.join("f.png"), b"").unwrap();
    let msg = err_text(ImageSet::from_folder(empty.join("f.png")));
    assert!(msg.contains("not a folder"), "{msg}");
}

#[test]
fn unreadable_images_give_clear_errors() {
    let dir = scratch("bad");
    let p = Preprocess::imagenet(8, 1.0, Interpolation::Bilinear).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("zero.jpg", vec![], "empty file"),
        (
            "text.png",
            b"hello, this is not an image at all".to_vec(),
            "not an image",
        ),
        (
            "truncated.png",
            {
                let mut bytes = Vec::new();
                image::RgbImage::from_pixel(40, 40, image::Rgb([1, 2, 3]))
                    .write_to(
                        &mut std::io::Cursor::new(&mut bytes),
                        image::ImageFormat::Png,
                    )
                    .unwrap();
                bytes.truncate(bytes.len() / 2);
                bytes
            },
            "cannot decode",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = err_text(data::load_image(&path, &p));
        assert!(msg.contains(name) && msg.contains(want), "{name}: {msg}");
    }
    let msg = err_text(data::load_image(dir.join("absent.png"), &p));
    assert!(
        msg.contains("absent.png") && msg.contains("cannot read"),
        "{msg}"
    );

    // Too large: a valid PNG header announcing 20000 x 20000 pixels is refused before decoding.
    let mut png = Vec::new();
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let ihdr: Vec<u8> = [
        &20000u32.to_be_bytes()[..],
        &20000u32.to_be_bytes(),
        &[8, 2, 0, 0, 0],
    ]
    .concat();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&[b"IHDR".as_slice(), &ihdr].concat()).to_be_bytes());
    // The decoder reads up to the first IDAT before it reports the size: give it an empty one.
    for kind in [b"IDAT", b"IEND"] {
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(&crc32(kind).to_be_bytes());
    }
    let path = dir.join("huge.png");
    std::fs::write(&path, png).unwrap();
    let msg = err_text(data::load_image(&path, &p));
    assert!(
        msg.contains("huge.png") && msg.contains("megapixels"),
        "{msg}"
    );
}

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

#[test]
fn batch_loader_is_ordered_complete_and_skips_bad_images() {
    let dir = scratch("loader");
    for i in 0..11 {
        if i == 4 || i == 9 {
            std::fs::write(dir.join(format!("img{i:02}.png")), b"broken").unwrap();
        } else {
            write_png(
                &dir.join(format!("img{i:02}.png")),
                10 + i,
                9 + 2 * i,
                i as u8,
            );
        }
    }
    let set = ImageSet::from_folder(&dir).unwrap();
    let p = Preprocess::imagenet(8, 0.875, Interpolation::Bicubic).unwrap();
    let expected: Vec<Option<Vec<f32>>> = (0..set.len())
        .map(|i| data::load_image(set.path(i), &p).ok())
        .collect();

    for threads in [1, 3] {
        let loader = BatchLoader::new(set.clone(), p.clone(), 4, threads).unwrap();
        assert_eq!(loader.num_batches(), 3);
        let batches: Vec<Batch> = loader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 3);
        let mut seen = Vec::new();
        for (n, b) in batches.iter().enumerate() {
            assert_eq!(b.number, n);
            assert_eq!(b.data.len(), b.indices.len() * p.tensor_len());
            for (k, &i) in b.indices.iter().enumerate() {
                let want = expected[i].as_ref().expect("good image");
                assert_eq!(
                    &b.data[k * p.tensor_len()..(k + 1) * p.tensor_len()],
                    &want[..]
                );
                seen.push(i);
            }
            for (path, reason) in &b.skipped {
                assert!(
                    path.ends_with("img04.png") || path.ends_with("img09.png"),
                    "{path:?}"
                );
                assert!(reason.contains("not an image"), "{reason}");
            }
        }
        assert_eq!(seen, [0, 1, 2, 3, 5, 6, 7, 8, 10]);
        assert_eq!(batches[1].skipped.len(), 1);
        assert_eq!(batches[2].skipped.len(), 1);
    }

    // Dropping a loader part-way stops its workers (the test would hang otherwise).
    let mut loader = BatchLoader::new(set.clone(), p.clone(), 2, 2).unwrap();
    assert!(loader.next().unwrap().is_ok());
    drop(loader);

    // BatchSource picks the folder path.
    let source = BatchSource::open(&dir, &p, 5, 2).unwrap();
    assert_eq!(
        (source.len(), source.num_batches(), source.image_shape()),
        (11, 3, [3, 8, 8])
    );
    assert_eq!(source.image_set().unwrap().len(), 11);
    let n: usize = source.map(|b| b.unwrap().len()).sum();
    assert_eq!(n, 9);
}

#[test]
fn npy_input_is_batched_and_checked() {
    let dir = scratch("npyin");
    let (n, h, w) = (5usize, 4usize, 3usize);
    let values: Vec<f32> = (0..n * 3 * h * w).map(|i| i as f32 * 0.5 - 7.0).collect();
    let path = dir.join("x.npy");
    npy::write_npy(&path, &[n, 3, h, w], &values).unwrap();
    let batches: Vec<Batch> = NpyBatches::open(&path, 2)
        .unwrap()
        .map(|b| b.unwrap())
        .collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[2].indices, [4]);
    let all: Vec<f32> = batches.iter().flat_map(|b| b.data.clone()).collect();
    assert_eq!(all, values);

    // float64 input is accepted and rounded to f32.
    let path64 = dir.join("x64.npy");
    let v64: Vec<f64> = values.iter().map(|&v| v as f64).collect();
    npy::write_npy(&path64, &[n, 3, h, w], &v64).unwrap();
    let source = BatchSource::open(
        &path64,
        &Preprocess::imagenet(4, 1.0, Interpolation::Bicubic).unwrap(),
        4,
        1,
    )
    .unwrap();
    assert_eq!(source.image_shape(), [3, h, w]);
    assert!(source.image_set().is_none());
    let all: Vec<f32> = source.flat_map(|b| b.unwrap().data).collect();
    assert_eq!(all, values);

    // Wrong shape, NaN.
    let bad = dir.join("bad_shape.npy");
    npy::write_npy(&bad, &[2, 4, 2, 2], &[0f32; 32]).unwrap();
    let msg = err_text(NpyBatches::open(&bad, 2));
    assert!(
        msg.contains("bad_shape.npy") && msg.contains("[N, 3, H, W]"),
        "{msg}"
    );
    let nan = dir.join("nan.npy");
    let mut v = vec![0f32; 2 * 3 * 2 * 2];
    v[13] = f32::NAN;
    npy::write_npy(&nan, &[2, 3, 2, 2], &v).unwrap();
    let msg = err_text(NpyBatches::open(&nan, 2).unwrap().next().unwrap());
    assert!(
        msg.contains("nan.npy") && msg.contains("image 1") && msg.contains("non-finite"),
        "{msg}"
    );
}
