//! `sparsescope report`: on a small real run (the bundled EfficientNet-Lite0, four bundled photos
//! in two class folders, three taps), before and after `rsa`, `prune` and `nullcode`: the
//! expected PNGs with their dimensions, and one index.html that embeds every PNG as a data: URI,
//! references nothing outside itself, and shows the run's summary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sparsescope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparsescope"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = sparsescope(args);
    assert!(
        o.status.success(),
        "sparsescope {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Four bundled photos in two class folders, and a run of three taps over them.
fn small_run(name: &str) -> PathBuf {
    let dir = root().join("target/test-scratch/report").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (class, photos) in [
        ("cats", ["chelsea.png", "squirrel.jpg"]),
        ("things", ["coffee.png", "rocket.jpg"]),
    ] {
        let d = dir.join("images").join(class);
        std::fs::create_dir_all(&d).unwrap();
        for p in photos {
            std::fs::copy(root().join("models/images").join(p), d.join(p)).unwrap();
        }
    }
    let out = dir.join("out");
    ok(&[
        "run",
        "--quiet",
        "--model",
        &root()
            .join("models/efficientnet_lite0.safetensors")
            .to_string_lossy(),
        "--input",
        &dir.join("images").to_string_lossy(),
        "--out",
        &out.to_string_lossy(),
        "--taps",
        "_blocks.2.act2,_blocks.9.act2,_blocks.9",
    ]);
    out
}

fn png_size(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

/// Every `src=` / `href=` of the page is a data: URI or a fragment, and nothing names a network
/// location: the page opens offline.
fn assert_self_contained(html: &str) {
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let v = &html[i + attr.len()..];
            assert!(
                v.starts_with("data:image/png;base64,") || v.starts_with('#'),
                "external reference: {}",
                &v[..v.len().min(60)]
            );
        }
    }
    for bad in ["http://", "https://", "<script", "@import", "url("] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }
}

#[test]
fn report_of_a_run_with_every_analysis() {
    let out = small_run("full");
    let o = out.to_string_lossy().into_owned();
    ok(&["rsa", "--quiet", &o]);
    ok(&["prune", "--quiet", &o, "--random-repeats", "2"]);
    ok(&["nullcode", "--quiet", &o]);
    let stdout = ok(&["report", &o]);
    assert!(stdout.contains("report/index.html"), "{stdout}");

    let dir = out.join("report");
    let expected = [
        ("hist_pos.png", None),
        ("depth.png", Some((1200, 620))),
        ("firing_rates.png", Some((1200, 640))),
        ("rdm_pooled_correlation.png", None),
        ("rdm_flat_correlation.png", None),
        ("rsa_pooled_correlation_spearman.png", Some((1000, 860))),
        ("prune.png", None),
        ("nullcode_share.png", Some((1200, 620))),
        ("nullcode_maps.png", None),
    ];
    for (file, size) in expected {
        let (w, h) = png_size(&dir.join(file));
        assert!(w >= 300 && h >= 200, "{file}: {w}x{h}");
        if let Some(s) = size {
            assert_eq!((w, h), s, "{file}");
        }
    }
    // 3 taps: a 2 x 2 grid of 300 x 220 panels under a 40-pixel title.
    assert_eq!(png_size(&dir.join("hist_pos.png")), (600, 480));
    // 4 photos: one row of four 192-pixel tiles with 6-pixel gaps.
    assert_eq!(
        png_size(&dir.join("nullcode_maps.png")),
        (4 * 198 + 6, 198 + 6)
    );

    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_self_contained(&html);
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        expected.len(),
        "every figure embedded once"
    );
    for text in [
        "efficientnet_lite0.safetensors",
        "llvmpipe",
        "_blocks.9.act2",
        "grouped by class (cats, things)",
        "4 images",
    ] {
        assert!(html.contains(text), "index.html lacks {text:?}");
    }
    assert!(!html.contains("to add the"), "a section is missing");
}

#[test]
fn report_of_a_bare_run_says_what_adds_the_missing_sections() {
    let out = small_run("bare");
    let o = out.to_string_lossy().into_owned();
    let stdout = ok(&["report", &o]);
    for cmd in [
        "sparsescope rsa",
        "sparsescope prune",
        "sparsescope nullcode",
    ] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
    let dir = out.join("report");
    for file in [
        "hist_pos.png",
        "depth.png",
        "firing_rates.png",
        "rdm_pooled_correlation.png",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    assert!(!dir.join("prune.png").exists());
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_self_contained(&html);
    assert!(html.contains("to add the pruning curves"), "missing note");
}

#[test]
fn report_of_a_folder_that_is_not_a_run_fails_clearly() {
    let dir = root().join("target/test-scratch/report/not-a-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = sparsescope(&["report", &dir.to_string_lossy()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("summary.json"), "{err}");
    assert!(
        !dir.join("report").exists(),
        "nothing written into a non-run folder"
    );
}
