//! NumPy `.npy` files (format version 1.0 when writing; 1.0, 2.0 and 3.0 when reading),
//! little-endian, C order.
//!
//! Every output array of sparsescope is a `.npy` so that numpy, rsatoolbox and thingsvision users
//! load it in one line. Writes go to a temporary name in the destination folder and are renamed
//! into place only when complete: a run that is killed or fails leaves any earlier file with that
//! name whole, and never a half-written one.
//!
//! The header layout follows numpy's `numpy/lib/format.py` (`_write_array_header`,
//! `_wrap_header`): keys sorted, `repr` of the values, spare spaces after the dict so the leading
//! dimension can grow in place, padded with spaces and a final `\n` to a multiple of 64 bytes.
//! A file we write is byte-identical to `np.save` of the same array.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy aligns the start of the data to this many bytes (`format.ARRAY_ALIGN`).
const ARRAY_ALIGN: usize = 64;
/// numpy leaves room for the leading dimension to grow to this many digits
/// (`format.GROWTH_AXIS_MAX_DIGITS`).
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// An element type that can be stored in a `.npy` file.
pub trait NpyElement: bytemuck::Pod + Send + Sync + 'static {
    /// numpy's dtype string for this type, little-endian (`'<f4'`, `'|u1'` ...).
    const DESCR: &'static str;
    /// Human name used in error messages.
    const NAME: &'static str;
    fn from_le(bytes: &[u8]) -> Self;
    fn extend_le(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($t:ty, $descr:literal) => {
        impl NpyElement for $t {
            const DESCR: &'static str = $descr;
            const NAME: &'static str = stringify!($t);
            fn from_le(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            fn extend_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

npy_element!(f32, "<f4");
npy_element!(f64, "<f8");
npy_element!(u64, "<u8");
npy_element!(u32, "<u4");
npy_element!(i64, "<i8");
npy_element!(u8, "|u1");

/// The parsed header of a `.npy` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Byte offset of the first data element in the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (1 for a 0-d array).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The header bytes numpy writes for an array of this dtype and shape (version 1.0).
pub fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = shape.first() {
        let digits = first.to_string().len();
        dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    // magic (6) + version (2) + u16 length (2) + dict + padding + '\n' = multiple of 64.
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let pad = (ARRAY_ALIGN - unpadded % ARRAY_ALIGN) % ARRAY_ALIGN;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The dict of any realistic shape is far below 64 KiB; version 1.0 covers it.
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

/// Parse a header from the start of a file. `bytes` must hold at least the whole header.
fn parse_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    let bad = |problem: String| Error::file(path, problem);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            "not a .npy file (it does not start with the magic bytes \\x93NUMPY)".into(),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated .npy header".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => {
            return Err(bad(format!(
                ".npy format version {major}.{minor} is not supported (only 1.0, 2.0, 3.0)"
            )));
        }
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "truncated .npy header: it says {header_len} bytes but the file is shorter"
            ))
        })?;
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad(".npy header is not text".into()))?;
    let descr = dict_value(text, "descr")
        .and_then(|v| {
            let v = v.trim();
            v.strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .map(str::to_string)
        })
        .ok_or_else(|| {
            bad(format!(
                ".npy header has no readable 'descr': {}",
                text.trim()
            ))
        })?;
    let fortran_order = match dict_value(text, "fortran_order").map(str::trim) {
        Some("False") => false,
        Some("True") => true,
        _ => {
            return Err(bad(format!(
                ".npy header has no readable 'fortran_order': {}",
                text.trim()
            )));
        }
    };
    let shape_text = dict_value(text, "shape")
        .map(str::trim)
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| {
            bad(format!(
                ".npy header has no readable 'shape': {}",
                text.trim()
            ))
        })?;
    let mut shape = Vec::new();
    for part in shape_text.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let dim = part
            .trim_end_matches('L')
            .parse::<usize>()
            .map_err(|_| bad(format!(".npy header has a bad shape ({shape_text})")))?;
        shape.push(dim);
    }
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
        data_offset: end,
    })
}

/// The text of the value stored under `key` in a Python dict literal: from after `'key':` up to
/// the comma that ends it (commas inside a tuple do not end it).
fn dict_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let quoted = [format!("'{key}'"), format!("\"{key}\"")];
    let pos = quoted
        .iter()
        .find_map(|q| text.find(q.as_str()).map(|p| p + q.len()))?;
    let rest = text[pos..].trim_start().strip_prefix(':')?;
    let mut depth = 0usize;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Read just the header of a `.npy` file (and check that the file holds all of its data).
pub fn read_header(path: impl AsRef<Path>) -> Result<NpyHeader> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::file(path, format!("cannot stat: {e}")))?
        .len();
    // Read the fixed part first, then the exact header length it announces.
    let mut head = vec![0u8; 12.min(file_len as usize)];
    file.read_exact(&mut head)
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let header_len = match head.get(6) {
        Some(1) if head.len() >= 10 => u16::from_le_bytes([head[8], head[9]]) as usize + 10,
        Some(2 | 3) if head.len() >= 12 => {
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize + 12
        }
        _ => head.len(),
    };
    let mut bytes = head;
    if header_len > bytes.len() {
        let mut more = vec![0u8; (header_len as u64).min(file_len) as usize - bytes.len()];
        file.read_exact(&mut more)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        bytes.extend_from_slice(&more);
    }
    let header = parse_header(&bytes, path)?;
    check_layout(&header, path)?;
    let itemsize = itemsize(&header.descr)
        .ok_or_else(|| Error::file(path, format!("dtype '{}' is not supported", header.descr)))?;
    let data_bytes = header
        .shape
        .iter()
        .try_fold(itemsize as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| Error::file(path, format!("shape {:?} is too large", header.shape)))?;
    let have = file_len - header.data_offset as u64;
    if have < data_bytes {
        return Err(Error::file(
            path,
            format!(
                "truncated: shape {:?} of '{}' needs {data_bytes} data bytes but the file holds {have}",
                header.shape, header.descr
            ),
        ));
    }
    if have > data_bytes {
        return Err(Error::file(
            path,
            format!(
                "corrupt: shape {:?} of '{}' needs {data_bytes} data bytes but the file holds {have}",
                header.shape, header.descr
            ),
        ));
    }
    Ok(header)
}

fn check_layout(header: &NpyHeader, path: &Path) -> Result<()> {
    if header.fortran_order {
        return Err(Error::file(
            path,
            "array is stored in Fortran order; only C order is supported \
             (save np.ascontiguousarray(a) instead)",
        ));
    }
    if header.descr.starts_with('>') && itemsize(&header.descr).is_some_and(|s| s > 1) {
        return Err(Error::file(
            path,
            format!(
                "array is big-endian ('{}'); only little-endian is supported (save a.astype(a.dtype.newbyteorder('<')) instead)",
                header.descr
            ),
        ));
    }
    Ok(())
}

/// Item size of the dtypes we understand, any byte order; `None` for everything else.
fn itemsize(descr: &str) -> Option<usize> {
    let kind = descr.trim_start_matches(['<', '>', '|', '=']);
    match kind {
        "f4" | "u4" | "i4" => Some(4),
        "f8" | "u8" | "i8" => Some(8),
        "u1" | "i1" | "b1" => Some(1),
        "f2" | "u2" | "i2" => Some(2),
        _ => None,
    }
}

/// Whether `descr` (as found in a file) denotes the little-endian type `want`.
fn descr_matches(descr: &str, want: &str) -> bool {
    if descr == want {
        return true;
    }
    // Byte order is meaningless for one-byte types; '=' is native, i.e. little here.
    let kind = |d: &str| d.trim_start_matches(['<', '>', '|', '=']).to_string();
    let one_byte = itemsize(want) == Some(1);
    kind(descr) == kind(want)
        && (one_byte || descr.starts_with('=') && cfg!(target_endian = "little"))
}

fn read_data(path: &Path) -> Result<(NpyHeader, Vec<u8>)> {
    let header = read_header(path)?;
    let mut bytes =
        std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    bytes.drain(..header.data_offset);
    Ok((header, bytes))
}

/// Read an array whose dtype is exactly `T` (little-endian, C order).
pub fn read_npy<T: NpyElement>(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<T>)> {
    let path = path.as_ref();
    let header = read_header(path)?;
    if !descr_matches(&header.descr, T::DESCR) {
        return Err(Error::file(
            path,
            format!(
                "dtype is '{}' but {} ('{}') was expected",
                header.descr,
                T::NAME,
                T::DESCR
            ),
        ));
    }
    let (header, bytes) = read_data(path)?;
    let size = std::mem::size_of::<T>();
    let data = bytes.chunks_exact(size).map(T::from_le).collect();
    Ok((header.shape, data))
}

/// Read a float array as f32: `'<f4'` as is, `'<f8'` rounded to f32.
pub fn read_npy_f32(path: impl AsRef<Path>) -> Result<(Vec<usize>, Vec<f32>)> {
    let path = path.as_ref();
    let header = read_header(path)?;
    if descr_matches(&header.descr, "<f4") {
        read_npy::<f32>(path)
    } else if descr_matches(&header.descr, "<f8") {
        let (shape, data) = read_npy::<f64>(path)?;
        Ok((shape, data.into_iter().map(|v| v as f32).collect()))
    } else {
        Err(Error::file(
            path,
            format!(
                "dtype is '{}' but float32 ('<f4') or float64 ('<f8') was expected",
                header.descr
            ),
        ))
    }
}

/// Rows of a float `.npy` read on demand, so a large input never has to fit in memory.
/// The leading dimension is the row index.
pub struct NpyRowReader {
    path: PathBuf,
    file: File,
    header: NpyHeader,
    row_len: usize,
    is_f64: bool,
}

impl NpyRowReader {
    /// Open a `'<f4'` or `'<f8'` array for reading row by row.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let header = read_header(&path)?;
        let is_f64 = if descr_matches(&header.descr, "<f4") {
            false
        } else if descr_matches(&header.descr, "<f8") {
            true
        } else {
            return Err(Error::file(
                &path,
                format!(
                    "dtype is '{}' but float32 ('<f4') or float64 ('<f8') was expected",
                    header.descr
                ),
            ));
        };
        let file =
            File::open(&path).map_err(|e| Error::file(&path, format!("cannot open: {e}")))?;
        let row_len = header.shape.iter().skip(1).product();
        Ok(NpyRowReader {
            path,
            file,
            header,
            row_len,
            is_f64,
        })
    }

    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// Number of rows (the leading dimension; 1 for a 0-d array).
    pub fn rows(&self) -> usize {
        self.header.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row.
    pub fn row_len(&self) -> usize {
        self.row_len
    }

    /// Rows `start .. start + count` as f32.
    pub fn read_rows(&mut self, start: usize, count: usize) -> Result<Vec<f32>> {
        let end = start.checked_add(count).filter(|&e| e <= self.rows());
        if end.is_none() {
            return Err(Error::file(
                &self.path,
                format!(
                    "rows {start}..{} asked for but the array has {} rows",
                    start.saturating_add(count),
                    self.rows()
                ),
            ));
        }
        let itemsize = if self.is_f64 { 8 } else { 4 };
        let offset = self.header.data_offset as u64 + (start * self.row_len * itemsize) as u64;
        let mut bytes = vec![0u8; count * self.row_len * itemsize];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| {
                Error::file(
                    &self.path,
                    format!("cannot read rows {start}..{}: {e}", start + count),
                )
            })?;
        Ok(if self.is_f64 {
            bytes
                .chunks_exact(8)
                .map(|b| f64::from_le(b) as f32)
                .collect()
        } else {
            bytes.chunks_exact(4).map(f32::from_le).collect()
        })
    }
}

/// Write a whole array atomically (temporary file in the same folder, then rename).
pub fn write_npy<T: NpyElement>(path: impl AsRef<Path>, shape: &[usize], data: &[T]) -> Result<()> {
    let mut writer = NpyWriter::<T>::create(path, shape)?;
    writer.append(data)?;
    writer.finish()
}

/// Distinguishes temporary files of writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Streams an array of known final shape to disk, leading dimension first: the header for the
/// final shape is written up front, rows are appended batch by batch, and the file appears under
/// its name only when `finish` has checked that every row arrived. Dropping the writer before
/// `finish` removes the temporary file, leaving any earlier file of that name untouched.
pub struct NpyWriter<T: NpyElement> {
    path: PathBuf,
    temp: PathBuf,
    out: Option<BufWriter<File>>,
    shape: Vec<usize>,
    total: usize,
    row_len: usize,
    written: usize,
    scratch: Vec<u8>,
    _element: PhantomData<T>,
}

impl<T: NpyElement> NpyWriter<T> {
    pub fn create(path: impl AsRef<Path>, shape: &[usize]) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let total = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| Error::file(&path, format!("shape {shape:?} is too large")))?;
        let row_len = shape.iter().skip(1).product();
        let name = path
            .file_name()
            .ok_or_else(|| Error::file(&path, "not a file name"))?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&temp).map_err(|e| {
            Error::file(
                &path,
                format!("cannot create temporary file {}: {e}", temp.display()),
            )
        })?;
        let mut writer = NpyWriter {
            path,
            temp,
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            shape: shape.to_vec(),
            total,
            row_len,
            written: 0,
            scratch: Vec::new(),
            _element: PhantomData,
        };
        let header = header_bytes(T::DESCR, shape);
        writer.write_bytes(&header)?;
        Ok(writer)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("NpyWriter used after finish");
        out.write_all(bytes)
            .map_err(|e| Error::file(&self.path, format!("cannot write: {e}")))
    }

    /// Append whole rows (a multiple of the product of the trailing dimensions).
    pub fn append(&mut self, data: &[T]) -> Result<()> {
        if self.row_len == 0 {
            if data.is_empty() {
                return Ok(());
            }
        } else if !data.len().is_multiple_of(self.row_len) {
            return Err(Error::file(
                &self.path,
                format!(
                    "appended {} values, not a whole number of rows of {} (shape {:?})",
                    data.len(),
                    self.row_len,
                    self.shape
                ),
            ));
        }
        if self.written + data.len() > self.total {
            return Err(Error::file(
                &self.path,
                format!(
                    "appending {} values would exceed the {} of shape {:?} ({} written)",
                    data.len(),
                    self.total,
                    self.shape,
                    self.written
                ),
            ));
        }
        if cfg!(target_endian = "little") {
            let bytes: &[u8] = bytemuck::cast_slice(data);
            self.write_bytes(bytes)?;
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            for chunk in data.chunks(1 << 16) {
                scratch.clear();
                for &v in chunk {
                    v.extend_le(&mut scratch);
                }
                self.write_bytes(&scratch)?;
            }
            self.scratch = scratch;
        }
        self.written += data.len();
        Ok(())
    }

    /// Rows appended so far.
    pub fn rows_written(&self) -> usize {
        self.written.checked_div(self.row_len).unwrap_or(0)
    }

    /// Like `finish`, for a stream that ended with fewer rows than declared (images skipped as
    /// unreadable): the header is rewritten in place with `rows` as the leading dimension. The
    /// header keeps its length because numpy's layout leaves room for the leading dimension to
    /// grow (`GROWTH_AXIS_MAX_DIGITS`).
    pub fn finish_rows(mut self, rows: usize) -> Result<()> {
        self.rewrite_rows(rows)?;
        self.finish()
    }

    fn rewrite_rows(&mut self, rows: usize) -> Result<()> {
        if rows != self.rows_written() || rows > self.shape.first().copied().unwrap_or(0) {
            return Err(Error::file(
                &self.path,
                format!(
                    "{} rows written, {rows} claimed, shape {:?}",
                    self.rows_written(),
                    self.shape
                ),
            ));
        }
        if self.shape.first().is_some_and(|&n| rows < n) {
            let old_len = header_bytes(T::DESCR, &self.shape).len();
            self.shape[0] = rows;
            self.total = rows * self.row_len;
            let header = header_bytes(T::DESCR, &self.shape);
            assert_eq!(
                header.len(),
                old_len,
                "npy headers leave room for the leading dimension"
            );
            let out = self.out.as_mut().expect("NpyWriter used after finish");
            out.seek(std::io::SeekFrom::Start(0))
                .map_err(|e| Error::file(&self.path, format!("cannot rewrite the header: {e}")))?;
            self.write_bytes(&header)?;
        }
        Ok(())
    }

    /// Check that all rows arrived, flush to disk and rename into place.
    pub fn finish(self) -> Result<()> {
        self.stage()?.commit()
    }

    /// Like `finish_rows`, without the rename: see `stage`.
    pub fn stage_rows(mut self, rows: usize) -> Result<Staged> {
        self.rewrite_rows(rows)?;
        self.stage()
    }

    /// Check that all rows arrived and flush to disk, leaving the file under its temporary
    /// name: a command that writes many files stages them all and renames them only once every
    /// one is complete, so a failure (a full disk) part-way leaves all earlier outputs as they
    /// were.
    pub fn stage(mut self) -> Result<Staged> {
        if self.written != self.total {
            return Err(Error::file(
                &self.path,
                format!(
                    "incomplete: {} of {} values written for shape {:?}; the file was not created",
                    self.written, self.total, self.shape
                ),
            ));
        }
        let out = self.out.take().expect("NpyWriter finished twice");
        // From here on the Staged value owns (and on failure removes) the temporary file.
        let staged = Staged {
            temp: self.temp.clone(),
            path: self.path.clone(),
            committed: false,
        };
        let file = out
            .into_inner()
            .map_err(|e| Error::file(&self.path, format!("cannot write: {}", e.error())))?;
        file.sync_all()
            .map_err(|e| Error::file(&self.path, format!("cannot flush to disk: {e}")))?;
        Ok(staged)
    }
}

/// A complete file under a temporary name in its destination folder, renamed into place by
/// `commit`; dropped uncommitted, the temporary file is removed and any earlier file of that
/// name stays as it was.
pub struct Staged {
    temp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Staged {
    /// Write `bytes` completely to a temporary file beside `path`.
    pub fn write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Staged> {
        let path = path.as_ref().to_path_buf();
        let temp = temp_path(&path)?;
        let staged = Staged {
            temp,
            path,
            committed: false,
        };
        let mut file = File::create(&staged.temp).map_err(|e| {
            Error::file(
                &staged.path,
                format!(
                    "cannot create temporary file {}: {e}",
                    staged.temp.display()
                ),
            )
        })?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::file(&staged.path, format!("cannot write: {e}")))?;
        Ok(staged)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rename into place.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.path).map_err(|e| {
            Error::file(
                &self.path,
                format!("cannot rename {} into place: {e}", self.temp.display()),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Commit staged files in order (only after all of them were staged successfully).
pub fn commit_all(files: Vec<Staged>) -> Result<()> {
    for f in files {
        f.commit()?;
    }
    Ok(())
}

/// A whole array staged under a temporary name (see `NpyWriter::stage`).
pub fn stage_npy<T: NpyElement>(
    path: impl AsRef<Path>,
    shape: &[usize],
    data: &[T],
) -> Result<Staged> {
    let mut writer = NpyWriter::<T>::create(path, shape)?;
    writer.append(data)?;
    writer.stage()
}

/// `.<name>.<pid>.<n>.tmp` beside `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::file(path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

impl<T: NpyElement> Drop for NpyWriter<T> {
    fn drop(&mut self) {
        // Not finished (or finish failed before the rename): the temporary file must go.
        if let Some(out) = self.out.take() {
            drop(out);
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
