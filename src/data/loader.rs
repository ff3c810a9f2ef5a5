//! Batches of preprocessed images, produced ahead of the GPU on worker threads.
//!
//! Plain `std::thread` workers rather than rayon: what matters here is a hard bound on how far
//! the workers run ahead (memory) and a deterministic output order, both easiest to state with
//! one mutex-guarded claim counter; and decoding must not compete with a rayon pool that other
//! code (the image crate, the CPU-side statistics) may be using at the same time.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{ImageSet, Preprocess, load_image};
use crate::npy::NpyRowReader;
use crate::{Error, Result};

/// How many batches (counting the one being waited for) the workers may be working on.
/// Two keeps the GPU fed while bounding memory to about two batches of images.
const BATCHES_AHEAD: usize = 2;

/// One batch, in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Position of this batch in the sequence (0, 1, ...).
    pub number: usize,
    /// Indices (into the image set or the .npy rows) of the images in `data`, ascending.
    pub indices: Vec<usize>,
    /// `[indices.len(), 3, H, W]` f32, row-major.
    pub data: Vec<f32>,
    /// Images of this batch's range that could not be read, with the reason; they are not in
    /// `data`. The caller decides whether to warn or to stop (`--strict`).
    pub skipped: Vec<(PathBuf, String)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

struct Claims {
    /// Next image index a worker may take.
    next_image: usize,
    /// Batches handed to the consumer so far.
    consumed: usize,
    shutdown: bool,
}

struct Shared {
    claims: Mutex<Claims>,
    wake: Condvar,
}

type ImageResult = (usize, std::result::Result<Vec<f32>, String>);

/// Decodes and preprocesses an image set on `threads` workers, yielding batches in order.
pub struct BatchLoader {
    set: ImageSet,
    preprocess: Preprocess,
    batch_size: usize,
    next_batch: usize,
    shared: Arc<Shared>,
    results: Receiver<ImageResult>,
    pending: HashMap<usize, std::result::Result<Vec<f32>, String>>,
    workers: Vec<JoinHandle<()>>,
}

impl BatchLoader {
    pub fn new(
        set: ImageSet,
        preprocess: Preprocess,
        batch_size: usize,
        threads: usize,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::Usage("batch size must be at least 1".into()));
        }
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            claims: Mutex::new(Claims {
                next_image: 0,
                consumed: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
        });
        let paths: Arc<Vec<PathBuf>> =
            Arc::new(set.entries.iter().map(|e| e.path.clone()).collect());
        let (tx, rx) = channel();
        let mut workers = Vec::with_capacity(threads);
        for t in 0..threads {
            let (shared, paths, pre, tx) = (
                shared.clone(),
                paths.clone(),
                preprocess.clone(),
                tx.clone(),
            );
            let handle = std::thread::Builder::new()
                .name(format!("sparsescope-decode-{t}"))
                .spawn(move || worker(shared, paths, pre, batch_size, tx))
                .map_err(|e| Error::Usage(format!("cannot start a decoding thread: {e}")))?;
            workers.push(handle);
        }
        Ok(BatchLoader {
            set,
            preprocess,
            batch_size,
            next_batch: 0,
            shared,
            results: rx,
            pending: HashMap::new(),
            workers,
        })
    }

    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    pub fn num_batches(&self) -> usize {
        self.set.len().div_ceil(self.batch_size)
    }

    fn next_batch(&mut self) -> Option<Result<Batch>> {
        let n = self.set.len();
        let start = self.next_batch * self.batch_size;
        if start >= n {
            return None;
        }
        let end = (start + self.batch_size).min(n);
        for i in start..end {
            while !self.pending.contains_key(&i) {
                match self.results.recv() {
                    Ok((j, r)) => {
                        self.pending.insert(j, r);
                    }
                    Err(_) => {
                        return Some(Err(Error::Usage(
                            "internal error: all image decoding threads stopped early".into(),
                        )));
                    }
                }
            }
        }
        let mut batch = Batch {
            number: self.next_batch,
            indices: Vec::with_capacity(end - start),
            data: Vec::with_capacity((end - start) * self.preprocess.tensor_len()),
            skipped: Vec::new(),
        };
        for i in start..end {
            match self.pending.remove(&i).expect("result present") {
                Ok(v) => {
                    batch.indices.push(i);
                    batch.data.extend_from_slice(&v);
                }
                Err(reason) => batch.skipped.push((self.set.path(i).to_path_buf(), reason)),
            }
        }
        self.next_batch += 1;
        let mut claims = self.shared.claims.lock().unwrap_or_else(|p| p.into_inner());
        claims.consumed = self.next_batch;
        self.shared.wake.notify_all();
        Some(Ok(batch))
    }
}

fn worker(
    shared: Arc<Shared>,
    paths: Arc<Vec<PathBuf>>,
    preprocess: Preprocess,
    batch_size: usize,
    tx: Sender<ImageResult>,
) {
    loop {
        let i = {
            let mut claims = shared.claims.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if claims.shutdown || claims.next_image >= paths.len() {
                    return;
                }
                if claims.next_image / batch_size < claims.consumed + BATCHES_AHEAD {
                    break;
                }
                claims = shared.wake.wait(claims).unwrap_or_else(|p| p.into_inner());
            }
            claims.next_image += 1;
            claims.next_image - 1
        };
        let result = catch_unwind(AssertUnwindSafe(|| load_image(&paths[i], &preprocess)));
        let result = match result {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Error::File { problem, .. })) => Err(problem),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("preprocessing crashed on this image".to_string()),
        };
        if tx.send((i, result)).is_err() {
            return;
        }
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        {
            let mut claims = self.shared.claims.lock().unwrap_or_else(|p| p.into_inner());
            claims.shutdown = true;
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Batches of an already preprocessed float `[N, 3, H, W]` `.npy` (float32, or float64 rounded
/// to float32), read from disk one batch at a time so memory stays bounded.
pub struct NpyBatches {
    reader: NpyRowReader,
    path: PathBuf,
    batch_size: usize,
    next_batch: usize,
    /// The rows served: all of the file, or a shard's range of them.
    rows: std::ops::Range<usize>,
}

impl NpyBatches {
    pub fn open(path: impl AsRef<Path>, batch_size: usize) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if batch_size == 0 {
            return Err(Error::Usage("batch size must be at least 1".into()));
        }
        let reader = NpyRowReader::open(&path)?;
        let shape = reader.shape();
        if shape.len() != 4 || shape[1] != 3 {
            return Err(Error::file(
                &path,
                format!(
                    "expected preprocessed images as float32 [N, 3, H, W], found shape {shape:?}"
                ),
            ));
        }
        if shape[0] == 0 || shape[2] == 0 || shape[3] == 0 {
            return Err(Error::file(&path, format!("no images: shape {shape:?}")));
        }
        let rows = 0..reader.rows();
        Ok(NpyBatches {
            reader,
            path,
            batch_size,
            next_batch: 0,
            rows,
        })
    }

    /// Serve only rows `range` of the file (a shard); indices stay relative to the range.
    pub fn restrict(mut self, range: std::ops::Range<usize>) -> Self {
        self.rows = range.start.min(self.rows.end)..range.end.min(self.rows.end);
        self
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[3, H, W]`.
    pub fn image_shape(&self) -> [usize; 3] {
        let s = self.reader.shape();
        [s[1], s[2], s[3]]
    }

    pub fn num_batches(&self) -> usize {
        self.len().div_ceil(self.batch_size)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for NpyBatches {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next_batch * self.batch_size;
        if start >= self.len() {
            return None;
        }
        let end = (start + self.batch_size).min(self.len());
        let number = self.next_batch;
        self.next_batch += 1;
        let data = match self.reader.read_rows(self.rows.start + start, end - start) {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        // A NaN or Inf would silently poison every statistic downstream: refuse it here.
        let row = self.reader.row_len();
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Some(Err(Error::file(
                &self.path,
                format!(
                    "image {} contains a non-finite value ({})",
                    self.rows.start + start + pos / row,
                    data[pos]
                ),
            )));
        }
        Some(Ok(Batch {
            number,
            indices: (start..end).collect(),
            data,
            skipped: Vec::new(),
        }))
    }
}

/// Either input kind, behind one iterator: a folder of images (or a list of image files) decoded
/// on worker threads, or a preprocessed `.npy`.
pub enum BatchSource {
    Images(BatchLoader),
    Npy(NpyBatches),
}

impl BatchSource {
    /// A `.npy` file becomes `Npy`, a folder `Images` (see `ImageSet::from_folder`); for images
    /// the preprocessing is applied on `threads` worker threads.
    pub fn open(
        path: impl AsRef<Path>,
        preprocess: &Preprocess,
        batch_size: usize,
        threads: usize,
    ) -> Result<Self> {
        Self::open_part(path, preprocess, batch_size, threads, |n| 0..n)
    }

    /// `open`, serving only the images `part(total)` of the whole list (a shard of a run): for a
    /// folder, those entries of its sorted list (class names stay those of the whole folder);
    /// for a `.npy`, those rows. Batch indices count from the part's first image.
    pub fn open_part(
        path: impl AsRef<Path>,
        preprocess: &Preprocess,
        batch_size: usize,
        threads: usize,
        part: impl Fn(usize) -> std::ops::Range<usize>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let is_npy = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        if is_npy {
            let npy = NpyBatches::open(path, batch_size)?;
            let range = part(npy.len());
            Ok(BatchSource::Npy(npy.restrict(range)))
        } else {
            let mut set = ImageSet::from_folder(path)?;
            let range = part(set.entries.len());
            let end = range.end.min(set.entries.len());
            set.entries = set.entries[range.start.min(end)..end].to_vec();
            Ok(BatchSource::Images(BatchLoader::new(
                set,
                preprocess.clone(),
                batch_size,
                threads,
            )?))
        }
    }

    /// Number of images (skipped ones included).
    pub fn len(&self) -> usize {
        match self {
            BatchSource::Images(l) => l.set().len(),
            BatchSource::Npy(n) => n.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn num_batches(&self) -> usize {
        match self {
            BatchSource::Images(l) => l.num_batches(),
            BatchSource::Npy(n) => n.num_batches(),
        }
    }

    /// `[3, H, W]` of every image of the batches.
    pub fn image_shape(&self) -> [usize; 3] {
        match self {
            BatchSource::Images(l) => l.preprocess().image_shape(),
            BatchSource::Npy(n) => n.image_shape(),
        }
    }

    /// The image set, for image inputs (paths and labels for `images.txt`).
    pub fn image_set(&self) -> Option<&ImageSet> {
        match self {
            BatchSource::Images(l) => Some(l.set()),
            BatchSource::Npy(_) => None,
        }
    }
}

impl Iterator for BatchSource {
    type Item = Result<Batch>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            BatchSource::Images(l) => l.next(),
            BatchSource::Npy(n) => n.next(),
        }
    }
}
