//! Image input: folders of images (optionally one sub-folder per class), decoding, timm's
//! evaluation preprocessing, and batching on worker threads; or a float32 `[N, 3, H, W]` `.npy`
//! that is already preprocessed.
//!
//! Folder layout (`ImageSet::from_folder`):
//! - images directly in the folder: an unlabelled set;
//! - images in sub-folders (one level deep): each sub-folder is a class, classes indexed in the
//!   sorted order of their names (as torchvision's `ImageFolder`); sub-folders with no images are
//!   ignored, and so is anything deeper than one level;
//! - images both at the top and in sub-folders: an error, because it is ambiguous whether the
//!   top-level images belong to a class;
//! - an image is a file whose extension (any case) is one of `IMAGE_EXTENSIONS`; other files and
//!   hidden entries (names starting with '.') are ignored;
//! - order: sorted by relative path, component by component, so images of one class are
//!   contiguous and classes come in index order. The order is the row order of every output.

mod decode;
mod loader;
mod preprocess;

pub use decode::{MAX_PIXELS, decode_rgb8, load_image, load_rgb8, to_rgb8};
pub use loader::{Batch, BatchLoader, BatchSource, NpyBatches};
pub use preprocess::{
    IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD,
    Interpolation, Normalization, Preprocess,
};

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// File extensions taken as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Whether a path has one of the image extensions.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// One image of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry {
    /// Full path (the folder joined with the relative path).
    pub path: PathBuf,
    /// Path relative to the set's folder (the file name for sets built from a list).
    pub relative: PathBuf,
    /// Index into `ImageSet::classes`.
    pub label: Option<usize>,
}

/// An ordered list of image files, with class labels when the folder layout gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageSet {
    pub root: Option<PathBuf>,
    pub entries: Vec<ImageEntry>,
    /// Class names in index order (sorted); empty for an unlabelled set.
    pub classes: Vec<String>,
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Entries of a directory, sorted by name, hidden ones skipped.
fn sorted_entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf)>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::file(dir, format!("cannot list folder: {e}")))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

impl ImageSet {
    /// Scan a folder as described in the module comment.
    pub fn from_folder(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let meta =
            std::fs::metadata(dir).map_err(|e| Error::file(dir, format!("cannot open: {e}")))?;
        if !meta.is_dir() {
            return Err(Error::file(dir, "not a folder"));
        }
        let mut top = Vec::new();
        let mut classes: Vec<(String, Vec<PathBuf>)> = Vec::new();
        for (name, path) in sorted_entries(dir)? {
            // Follow symlinks: a linked class folder or image counts like a real one.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                let mut files = Vec::new();
                for (sub_name, sub_path) in sorted_entries(&path)? {
                    if is_image_path(&sub_path)
                        && std::fs::metadata(&sub_path).is_ok_and(|m| m.is_file())
                    {
                        files.push(PathBuf::from(&name).join(sub_name));
                    }
                }
                if !files.is_empty() {
                    classes.push((name.to_string_lossy().into_owned(), files));
                }
            } else if meta.is_file() && is_image_path(&path) {
                top.push(PathBuf::from(name));
            }
        }
        let exts = IMAGE_EXTENSIONS.join(", ");
        if top.is_empty() && classes.is_empty() {
            return Err(Error::file(
                dir,
                format!(
                    "no images found (looked for files ending in {exts}, in the folder and in its \
                     sub-folders)"
                ),
            ));
        }
        if !top.is_empty() && !classes.is_empty() {
            return Err(Error::file(
                dir,
                format!(
                    "has {} images at its top level (e.g. {}) and {} class sub-folders with \
                     images (e.g. {}/): put all images in class sub-folders, or none",
                    top.len(),
                    top[0].display(),
                    classes.len(),
                    classes[0].0
                ),
            ));
        }
        let entry = |relative: PathBuf, label| ImageEntry {
            path: dir.join(&relative),
            relative,
            label,
        };
        if classes.is_empty() {
            return Ok(ImageSet {
                root: Some(dir.to_path_buf()),
                entries: top.into_iter().map(|r| entry(r, None)).collect(),
                classes: Vec::new(),
            });
        }
        let mut entries = Vec::new();
        let mut names = Vec::new();
        for (label, (name, files)) in classes.into_iter().enumerate() {
            entries.extend(files.into_iter().map(|r| entry(r, Some(label))));
            names.push(name);
        }
        Ok(ImageSet {
            root: Some(dir.to_path_buf()),
            entries,
            classes: names,
        })
    }

    /// An unlabelled set of the given files, in the given order (e.g. from the command line).
    pub fn from_paths(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Result<Self> {
        let entries: Vec<ImageEntry> = paths
            .into_iter()
            .map(|p| {
                let path: PathBuf = p.into();
                ImageEntry {
                    relative: path.clone(),
                    path,
                    label: None,
                }
            })
            .collect();
        if entries.is_empty() {
            return Err(Error::Usage("no image files given".into()));
        }
        Ok(ImageSet {
            root: None,
            entries,
            classes: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn has_labels(&self) -> bool {
        !self.classes.is_empty()
    }

    pub fn path(&self, i: usize) -> &Path {
        &self.entries[i].path
    }

    /// Class name of image `i`, if the set is labelled.
    pub fn label_name(&self, i: usize) -> Option<&str> {
        self.entries[i].label.map(|l| self.classes[l].as_str())
    }
}
