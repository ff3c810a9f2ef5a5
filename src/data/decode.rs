//! Image decoding to 8-bit RGB, matching what timm's loader gets from
//! `PIL.Image.open(path).convert('RGB')`:
//!
//! - the format is recognised from the content, not the extension (as PIL does);
//! - greyscale is replicated to three channels; an alpha channel is dropped, not blended
//!   (PIL's `convert('RGB')` from RGBA or LA); palettes are expanded;
//! - 16-bit channels keep their high byte, which is what PIL does when it opens a 16-bit RGB(A)
//!   PNG. (PIL opens a 16-bit *greyscale* PNG as mode `I;16` and `convert('RGB')` then clips every
//!   value above 255 to white, which destroys the image; we keep the high byte there too.)
//! - float images (EXR, float TIFF) are clamped to [0, 1] and scaled to 0..255;
//! - EXIF orientation is not applied (PIL does not apply it unless asked, nor does timm);
//! - embedded ICC profiles are ignored (as PIL's `convert('RGB')` does).
//!
//! JPEG is decoded by `zune-jpeg` (through the `image` crate), PIL by libjpeg-turbo: the two
//! decoders may differ by a level or two on some pixels (IDCT rounding, chroma upsampling). The
//! golden test measures how much of that survives the resize.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::{DynamicImage, ImageReader, RgbImage};

use super::Preprocess;
use crate::{Error, Result};

/// Images with more pixels than this are refused before decoding, so that one huge or hostile
/// file cannot exhaust memory (PIL warns above 89 megapixels and refuses above 179).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Read and decode an image file to 8-bit RGB.
pub fn load_rgb8(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    decode_rgb8(&bytes, path)
}

/// Decode image bytes (any supported format, recognised from the content) to 8-bit RGB.
/// `path` is only used in error messages.
pub fn decode_rgb8(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(Error::file(path, "empty file (0 bytes), not an image"));
    }
    let reader = |bytes| -> Result<ImageReader<Cursor<&[u8]>>> {
        let r = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        if r.format().is_none() {
            return Err(Error::file(
                path,
                "not an image: the content is not JPEG, PNG, GIF, BMP, TIFF, WebP or another \
                 supported format",
            ));
        }
        Ok(r)
    };
    let format = reader(bytes)?.format();
    let format_name = format
        .map(|f| format!("{f:?}"))
        .unwrap_or_else(|| "image".into());

    // Dimensions come from the header alone: refuse huge images before allocating for them.
    let (width, height) = reader(bytes)?
        .into_dimensions()
        .map_err(|e| Error::file(path, format!("corrupt {format_name} header: {e}")))?;
    let pixels = width as u64 * height as u64;
    if pixels > MAX_PIXELS {
        return Err(Error::file(
            path,
            format!(
                "image is {width} x {height} = {:.1} megapixels, over the limit of {} megapixels",
                pixels as f64 / 1e6,
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    if pixels == 0 {
        return Err(Error::file(
            path,
            format!("image is {width} x {height}: no pixels"),
        ));
    }

    let mut r = reader(bytes)?;
    let mut limits = image::Limits::default();
    // Enough for MAX_PIXELS of 4 channels of f32, the widest decoded layout.
    limits.max_alloc = Some(MAX_PIXELS * 16 + (64 << 20));
    r.limits(limits);
    // A decoder that panics on a malformed file must not take the whole run down.
    let decoded = catch_unwind(AssertUnwindSafe(|| r.decode())).map_err(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Error::file(
            path,
            format!("{format_name} decoder crashed on this file: {msg}"),
        )
    })?;
    let img =
        decoded.map_err(|e| Error::file(path, format!("cannot decode {format_name}: {e}")))?;
    Ok(to_rgb8(img))
}

/// Convert any decoded layout to 8-bit RGB as described in the module comment.
pub fn to_rgb8(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn = |data: Vec<u8>| RgbImage::from_raw(w, h, data).expect("RGB buffer size");
    let n = w as usize * h as usize;
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageRgba8(rgba) => from_fn(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
        ),
        DynamicImage::ImageLuma8(l) => from_fn(l.as_raw().iter().flat_map(|&v| [v; 3]).collect()),
        DynamicImage::ImageLumaA8(la) => from_fn(
            la.as_raw()
                .chunks_exact(2)
                .flat_map(|p| [p[0]; 3])
                .collect(),
        ),
        DynamicImage::ImageRgb16(rgb) => {
            from_fn(rgb.as_raw().iter().map(|&v| (v >> 8) as u8).collect())
        }
        DynamicImage::ImageRgba16(rgba) => from_fn(
            rgba.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8))
                .collect(),
        ),
        DynamicImage::ImageLuma16(l) => from_fn(
            l.as_raw()
                .iter()
                .flat_map(|&v| [(v >> 8) as u8; 3])
                .collect(),
        ),
        DynamicImage::ImageLumaA16(la) => from_fn(
            la.as_raw()
                .chunks_exact(2)
                .flat_map(|p| [(p[0] >> 8) as u8; 3])
                .collect(),
        ),
        other => {
            // Float layouts (and any the image crate adds later): its own conversion clamps
            // to [0, 1] and scales to 0..255.
            let rgb = other.to_rgb8();
            debug_assert_eq!(rgb.len(), n * 3);
            rgb
        }
    }
}

/// Decode, resize, crop and normalise one image file: the CHW f32 network input.
pub fn load_image(path: impl AsRef<Path>, preprocess: &Preprocess) -> Result<Vec<f32>> {
    let img = load_rgb8(path)?;
    Ok(preprocess.apply(&img))
}
