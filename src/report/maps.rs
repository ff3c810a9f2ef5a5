//! Null-code maps: each input photo as the model saw it (the central crop), with its null
//! tokens tinted, for one tap. Drawn with the `image` crate directly (no chart around them).

use std::path::Path;

use image::{Rgb, RgbImage, imageops};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::npy::read_npy;
use crate::report::data::RunData;

/// Side of one tile, pixels.
const TILE: u32 = 192;
const GAP: u32 = 6;
/// The most images drawn.
pub const MAX_IMAGES: usize = 12;

/// The crop fraction the run's preprocessing used (1.0 when it cannot be read).
fn crop_pct(data: &RunData) -> f64 {
    let s = data.run.summary["inputs"]["preprocess"]
        .as_str()
        .unwrap_or_default();
    s.split("crop_pct: ")
        .nth(1)
        .and_then(|r| r.split([',', ' ']).next())
        .and_then(|v| v.parse().ok())
        .filter(|v: &f64| *v > 0.0 && *v <= 1.0)
        .unwrap_or(1.0)
}

/// The tap to map: the first kind's emergence tap, else the tap with the largest null share.
pub fn map_tap(nullcode: &Value) -> Option<&Value> {
    let taps = nullcode["taps"].as_array()?;
    let emerged = nullcode["emergence"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["tap"].as_str())
        .find_map(|name| taps.iter().find(|t| t["name"] == name));
    emerged.or_else(|| {
        taps.iter().max_by(|a, b| {
            let s = |t: &Value| t["null_share"].as_f64().unwrap_or(0.0);
            s(a).total_cmp(&s(b))
        })
    })
}

/// Draw the maps of `tap` into `path`; returns the images drawn (their paths), or `None` when
/// the run's inputs are not image files.
pub fn null_maps(
    data: &RunData,
    nullcode: &Value,
    tap: &Value,
    path: &Path,
) -> Result<Option<Vec<String>>> {
    let name = tap["name"].as_str().unwrap_or_default();
    let (shape, hoyer) = read_npy::<f32>(data.run.array_path(name, "hoyer"))?;
    let (_, cos) = read_npy::<f32>(data.run.array_path(name, "nullcode_cos"))?;
    let [n, p] = shape[..] else {
        return Err(Error::file(
            data.run.array_path(name, "hoyer"),
            format!("shape {shape:?}, expected [N, P]"),
        ));
    };
    let grid = [
        tap["grid"][0].as_u64().unwrap_or(0) as usize,
        tap["grid"][1].as_u64().unwrap_or(0) as usize,
    ];
    let prefix = tap["prefix_tokens"].as_u64().unwrap_or(0) as usize;
    if grid[0] * grid[1] + prefix != p || grid[0] == 0 {
        return Ok(None);
    }
    let (cmin, hmin) = (
        nullcode["thresholds"]["cos_min"]
            .as_f64()
            .unwrap_or(f64::INFINITY),
        nullcode["thresholds"]["hoyer_min"]
            .as_f64()
            .unwrap_or(f64::INFINITY),
    );
    let frac = crop_pct(data);
    let count = n.min(MAX_IMAGES).min(data.run.images.len());
    let cols = count.clamp(1, 4) as u32;
    let rows = count.div_ceil(cols as usize).max(1) as u32;
    let mut canvas = RgbImage::from_pixel(
        cols * (TILE + GAP) + GAP,
        rows * (TILE + GAP) + GAP,
        Rgb([255, 255, 255]),
    );
    let mut drawn = Vec::new();
    for i in 0..count {
        let file = &data.run.images[i].0;
        let Ok(img) = image::open(file) else {
            // A .npy input or a moved photo: no maps rather than wrong ones.
            return Ok(None);
        };
        let img = img.to_rgb8();
        let (w, h) = img.dimensions();
        let side = ((w.min(h) as f64) * frac).round().max(1.0) as u32;
        let crop = imageops::crop_imm(&img, (w - side) / 2, (h - side) / 2, side, side).to_image();
        let mut tile = imageops::resize(&crop, TILE, TILE, imageops::FilterType::Triangle);
        for (k, (&hv, &cv)) in hoyer[i * p + prefix..(i + 1) * p]
            .iter()
            .zip(&cos[i * p + prefix..(i + 1) * p])
            .enumerate()
        {
            if !(cv as f64 >= cmin && hv as f64 >= hmin) {
                continue;
            }
            let (r, c) = ((k / grid[1]) as u32, (k % grid[1]) as u32);
            let (y0, y1) = (r * TILE / grid[0] as u32, (r + 1) * TILE / grid[0] as u32);
            let (x0, x1) = (c * TILE / grid[1] as u32, (c + 1) * TILE / grid[1] as u32);
            for y in y0..y1 {
                for x in x0..x1 {
                    let px = tile.get_pixel_mut(x, y);
                    // 55% red over the photo.
                    px.0 = [
                        (px.0[0] as f32 * 0.45 + 255.0 * 0.55) as u8,
                        (px.0[1] as f32 * 0.45) as u8,
                        (px.0[2] as f32 * 0.45) as u8,
                    ];
                }
            }
        }
        let (col, row) = ((i as u32) % cols, (i as u32) / cols);
        imageops::replace(
            &mut canvas,
            &tile,
            (GAP + col * (TILE + GAP)) as i64,
            (GAP + row * (TILE + GAP)) as i64,
        );
        drawn.push(file.clone());
    }
    canvas
        .save(path)
        .map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    Ok(Some(drawn))
}
