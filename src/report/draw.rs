//! Shared drawing pieces: the bundled font, errors, colours, label shortening.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// DejaVu Sans from Debian's fonts-dejavu-core (assets/fonts/README.md): figures render the
/// same everywhere, with no system fonts.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub const SANS: &str = "sans-serif";

pub fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(SANS, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled DejaVuSans.ttf is a valid font"));
    });
}

/// A drawing error as this crate's error, naming the figure file.
pub fn drawn<T, E: std::fmt::Display>(r: std::result::Result<T, E>, path: &Path) -> Result<T> {
    r.map_err(|e| Error::file(path, format!("cannot draw the figure: {e}")))
}

/// The colour of `t` in [0, 1] on viridis (8 anchors, linear in between).
pub fn viridis(t: f64) -> RGBColor {
    const A: [(u8, u8, u8); 8] = [
        (68, 1, 84),
        (70, 50, 126),
        (54, 92, 141),
        (39, 127, 142),
        (31, 161, 135),
        (74, 193, 109),
        (160, 218, 57),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (A.len() - 1) as f64;
    let i = (x.floor() as usize).min(A.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    RGBColor(
        mix(A[i].0, A[i + 1].0),
        mix(A[i].1, A[i + 1].1),
        mix(A[i].2, A[i + 1].2),
    )
}

/// `name` cut to at most `max` characters, keeping its end (the distinguishing part of
/// `encoder.layer.11.mlp.activation` is the end).
pub fn short(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        name.to_string()
    } else {
        let tail: String = name.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// Every k-th of `count` labels, so that at most `fit` are drawn.
pub fn label_step(count: usize, fit: usize) -> usize {
    count.div_ceil(fit.max(1)).max(1)
}

/// A categorical colour by index (tab10).
pub fn category(i: usize) -> RGBColor {
    const T: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = T[i % T.len()];
    RGBColor(r, g, b)
}
