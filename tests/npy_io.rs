//! `.npy` reading and writing: round trips for every dtype, files written by numpy (committed by
//! tests/golden/make_preprocess_golden.py, numpy 2.4) read back and re-written byte for byte,
//! atomic replacement, and every refusal with a message naming the file.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sparsescope::npy::{self, NpyElement, NpyRowReader, NpyWriter};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/preprocess")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sparsescope-npy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn err_text<T>(r: sparsescope::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// The golden script's formula: k = i * 37 % 101, then k - 50 (signed), k (unsigned) or
/// (k - 50) / 8 (floats).
fn formula(i: usize) -> i64 {
    (i as i64 * 37) % 101
}

trait FromFormula: NpyElement + PartialEq + std::fmt::Debug {
    fn at(i: usize) -> Self;
}
impl FromFormula for f32 {
    fn at(i: usize) -> Self {
        (formula(i) - 50) as f32 / 8.0
    }
}
impl FromFormula for f64 {
    fn at(i: usize) -> Self {
        (formula(i) - 50) as f64 / 8.0
    }
}
impl FromFormula for u64 {
    fn at(i: usize) -> Self {
        formula(i) as u64
    }
}
impl FromFormula for u32 {
    fn at(i: usize) -> Self {
        formula(i) as u32
    }
}
impl FromFormula for i64 {
    fn at(i: usize) -> Self {
        formula(i) - 50
    }
}
impl FromFormula for u8 {
    fn at(i: usize) -> Self {
        formula(i) as u8
    }
}

/// Read a numpy-written file, check shape and values, then write the same array and compare
/// the bytes with numpy's.
fn check_numpy_file<T: FromFormula>(file: &str, shape: &[usize]) {
    let path = golden(file);
    let (got_shape, data) = npy::read_npy::<T>(&path).unwrap();
    assert_eq!(got_shape, shape, "{file}");
    let n: usize = shape.iter().product();
    let want: Vec<T> = (0..n).map(T::at).collect();
    assert_eq!(data, want, "{file}");

    let numpy_bytes = std::fs::read(&path).unwrap();
    let header = npy::read_header(&path).unwrap();
    assert_eq!(
        npy::header_bytes(T::DESCR, shape),
        numpy_bytes[..header.data_offset],
        "{file}: header layout differs from numpy's"
    );
    let out = scratch("same-bytes").join(file);
    npy::write_npy(&out, shape, &data).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        numpy_bytes,
        "{file}: bytes differ from np.save"
    );
}

#[test]
fn reads_numpy_files_and_writes_identical_bytes() {
    let text = std::fs::read_to_string(golden("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    let files = manifest["npy_files"].as_array().unwrap();
    assert!(files.len() >= 8);
    for f in files {
        let file = f["file"].as_str().unwrap();
        let shape: Vec<usize> = f["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        match f["descr"].as_str().unwrap() {
            "<f4" => check_numpy_file::<f32>(file, &shape),
            "<f8" => check_numpy_file::<f64>(file, &shape),
            "<u8" => check_numpy_file::<u64>(file, &shape),
            "<u4" => check_numpy_file::<u32>(file, &shape),
            "<i8" => check_numpy_file::<i64>(file, &shape),
            "|u1" => check_numpy_file::<u8>(file, &shape),
            other => panic!("{file}: unexpected dtype {other}"),
        }
    }
    // float64 read as f32.
    let (shape, v) = npy::read_npy_f32(golden("numpy_f8_4.npy")).unwrap();
    assert_eq!(shape, [4]);
    assert_eq!(v, (0..4).map(f32::at).collect::<Vec<_>>());
}

fn round_trip<T: FromFormula>(shape: &[usize]) {
    let n: usize = shape.iter().product();
    let data: Vec<T> = (0..n).map(T::at).collect();
    let path = scratch("roundtrip").join(format!("a_{}.npy", T::NAME));
    npy::write_npy(&path, shape, &data).unwrap();
    let (s, d) = npy::read_npy::<T>(&path).unwrap();
    assert_eq!((s.as_slice(), d), (shape, data));
    // Every header is padded so the data starts on a 64-byte boundary, as numpy does.
    assert_eq!(npy::read_header(&path).unwrap().data_offset % 64, 0);
}

#[test]
fn round_trips_every_dtype() {
    for shape in [&[7usize, 3][..], &[1], &[2, 3, 5, 4], &[], &[0, 9]] {
        round_trip::<f32>(shape);
        round_trip::<f64>(shape);
        round_trip::<u64>(shape);
        round_trip::<u32>(shape);
        round_trip::<i64>(shape);
        round_trip::<u8>(shape);
    }
    // Extreme values survive too.
    let dir = scratch("extremes");
    let v = [u64::MAX, 0, 1 << 53];
    npy::write_npy(dir.join("u.npy"), &[3], &v).unwrap();
    assert_eq!(npy::read_npy::<u64>(dir.join("u.npy")).unwrap().1, v);
    let v = [i64::MIN, -1, i64::MAX];
    npy::write_npy(dir.join("i.npy"), &[3], &v).unwrap();
    assert_eq!(npy::read_npy::<i64>(dir.join("i.npy")).unwrap().1, v);
    let v = [f32::MIN_POSITIVE, -0.0, f32::INFINITY];
    npy::write_npy(dir.join("f.npy"), &[3], &v).unwrap();
    let back = npy::read_npy::<f32>(dir.join("f.npy")).unwrap().1;
    assert_eq!(
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        v.map(f32::to_bits)
    );
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn streaming_writer_is_atomic() {
    let dir = scratch("atomic");
    let path = dir.join("feat.npy");

    // Batch by batch, then finish: the same file as a one-shot write.
    let data: Vec<f32> = (0..5 * 4).map(f32::at).collect();
    let mut w = NpyWriter::<f32>::create(&path, &[5, 4]).unwrap();
    assert!(!path.exists(), "nothing under the final name before finish");
    w.append(&data[..8]).unwrap();
    w.append(&data[8..12]).unwrap();
    assert_eq!(w.rows_written(), 3);
    w.append(&data[12..]).unwrap();
    w.finish().unwrap();
    assert_eq!(
        npy::read_npy::<f32>(&path).unwrap(),
        (vec![5, 4], data.clone())
    );
    let good = std::fs::read(&path).unwrap();
    assert_eq!(dir_names(&dir), ["feat.npy"]);

    // Dropped part-way (a run that fails or panics): the old file stays whole, no temp is left.
    {
        let mut w = NpyWriter::<f32>::create(&path, &[5, 4]).unwrap();
        w.append(&[9.0; 8]).unwrap();
        assert_eq!(
            dir_names(&dir).len(),
            2,
            "a temporary file exists while writing"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(dir_names(&dir), ["feat.npy"]);

    // finish() with rows missing: an error naming the file, the old file untouched.
    let mut w = NpyWriter::<f32>::create(&path, &[5, 4]).unwrap();
    w.append(&[1.0; 4]).unwrap();
    let msg = err_text(w.finish());
    assert!(
        msg.contains("feat.npy") && msg.contains("incomplete") && msg.contains("4 of 20"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert_eq!(dir_names(&dir), ["feat.npy"]);

    // Partial rows and overflow are refused without writing anything.
    let mut w = NpyWriter::<f32>::create(&path, &[2, 4]).unwrap();
    let msg = err_text(w.append(&[0.0; 3]));
    assert!(msg.contains("not a whole number of rows"), "{msg}");
    let msg = err_text(w.append(&[0.0; 12]));
    assert!(msg.contains("exceed"), "{msg}");
    w.append(&[2.0; 8]).unwrap();
    w.finish().unwrap();
    assert_eq!(
        npy::read_npy::<f32>(&path).unwrap(),
        (vec![2, 4], vec![2.0; 8])
    );

    // Fewer rows than declared (images skipped): finish_rows rewrites the header in place, and
    // the file is then byte-identical to a one-shot write of the rows that arrived.
    let mut w = NpyWriter::<f32>::create(&path, &[5, 4]).unwrap();
    w.append(&data[..12]).unwrap();
    let msg = err_text(
        NpyWriter::<f32>::create(dir.join("other.npy"), &[5, 4]).and_then(|mut o| {
            o.append(&data[..8])?;
            o.finish_rows(3)
        }),
    );
    assert!(
        msg.contains("other.npy") && msg.contains("2 rows written"),
        "{msg}"
    );
    w.finish_rows(3).unwrap();
    npy::write_npy(dir.join("ref.npy"), &[3, 4], &data[..12]).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(dir.join("ref.npy")).unwrap()
    );
    std::fs::remove_file(dir.join("ref.npy")).unwrap();
    assert_eq!(dir_names(&dir), ["feat.npy"]);

    // A folder that does not exist: a clear error.
    let msg = err_text(npy::write_npy(dir.join("missing/x.npy"), &[1], &[1u32]));
    assert!(
        msg.contains("x.npy") && msg.contains("cannot create"),
        "{msg}"
    );
}

#[test]
fn refusals_name_the_file_and_the_problem() {
    let dir = scratch("errors");
    let good = dir.join("good.npy");
    npy::write_npy(&good, &[4, 2], &(0..8).map(f32::at).collect::<Vec<_>>()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let write = |name: &str, b: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (golden("numpy_fortran.npy"), "Fortran order"),
        (golden("numpy_bigendian.npy"), "big-endian"),
        (golden("numpy_int16.npy"), "'<i2'"),
        (
            write("magic.npy", b"PK\x03\x04 this is a zip file, not npy"),
            "magic",
        ),
        (write("empty.npy", b""), "magic"),
        (
            write("short_data.npy", &bytes[..bytes.len() - 3]),
            "truncated",
        ),
        (write("short_header.npy", &bytes[..40]), "truncated"),
        (
            write("long_data.npy", &[&bytes[..], &[0u8; 4]].concat()),
            "holds 36",
        ),
        (
            write("version.npy", &[&bytes[..6], &[9, 0], &bytes[8..]].concat()),
            "version 9.0",
        ),
        (dir.join("absent.npy"), "cannot open"),
    ];
    for (path, want) in &cases {
        let name = path.file_name().unwrap().to_str().unwrap();
        let msg = err_text(npy::read_npy_f32(path));
        assert!(msg.contains(name) && msg.contains(want), "{name}: {msg}");
        // The streaming reader and the typed reader refuse the same files.
        assert!(NpyRowReader::open(path).is_err(), "{name}");
        assert!(npy::read_npy::<f32>(path).is_err(), "{name}");
    }

    // Right layout, wrong element type for the typed reader.
    let msg = err_text(npy::read_npy::<u64>(&good));
    assert!(
        msg.contains("good.npy") && msg.contains("'<f4'") && msg.contains("u64"),
        "{msg}"
    );

    // Row reads out of range.
    let mut r = NpyRowReader::open(&good).unwrap();
    assert_eq!((r.rows(), r.row_len()), (4, 2));
    assert_eq!(
        r.read_rows(1, 2).unwrap(),
        (2..6).map(f32::at).collect::<Vec<_>>()
    );
    let msg = err_text(r.read_rows(3, 2));
    assert!(msg.contains("good.npy") && msg.contains("4 rows"), "{msg}");
}
