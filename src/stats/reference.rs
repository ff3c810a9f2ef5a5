//! CPU reference of every tap statistic, in f64, written straight from the definitions
//! (../shared/DESIGN.md "Statistic definitions", src/stats/spec.rs) with none of the GPU's
//! tricks: every value is placed by comparison with the f64 bin edges, moments are two-pass.
//! Tests hold the GPU accumulators (src/stats/tap.rs) against it.

use crate::error::{Error, Result};
use crate::stats::spec::{Bin, LOG_BINS, StatsConfig, log_edges, log_place};
use crate::stats::totals::{Moments, RawCounts, TapTotals};

fn add(counts: &mut [u64], bin: Option<Bin>, bins: usize) {
    match bin {
        None => {}
        Some(Bin::Under) => counts[0] += 1,
        Some(Bin::In(i)) => counts[1 + i] += 1,
        Some(Bin::Over) => counts[bins + 1] += 1,
    }
}

/// Mean and squared deviations of `values`, two-pass in f64.
fn moments(values: impl Iterator<Item = f64> + Clone) -> Moments {
    let count = values.clone().count() as u64;
    if count == 0 {
        return Moments::default();
    }
    let mean = values.clone().sum::<f64>() / count as f64;
    Moments {
        count,
        shift: mean,
        sum_dev: values.clone().map(|v| v - mean).sum(),
        sum_dev2: values.map(|v| (v - mean) * (v - mean)).sum(),
    }
}

/// Hoyer sparsity of one token vector in f64; `None` when it holds a NaN or Inf.
pub fn hoyer(token: &[f32]) -> Option<f64> {
    if token.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let c = token.len() as f64;
    let l1: f64 = token.iter().map(|&v| (v as f64).abs()).sum();
    let l2: f64 = token
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    if l1 == 0.0 || token.len() == 1 {
        return Some(1.0);
    }
    Some((c.sqrt() - l1 / l2) / (c.sqrt() - 1.0))
}

fn check(x: &[f32], images: usize, positions: usize, channels: usize) -> Result<()> {
    if x.len() != images * positions * channels {
        return Err(Error::shape(
            "stats reference",
            format!("{} values for [{images}, {positions}, {channels}]", x.len()),
        ));
    }
    Ok(())
}

/// All statistics of a tap `x` [N, P, C] (row-major) with optional labels [N] (< classes).
pub fn reference_totals(
    x: &[f32],
    images: usize,
    positions: usize,
    channels: usize,
    labels: Option<&[u32]>,
    config: &StatsConfig,
) -> Result<TapTotals> {
    check(x, images, positions, channels)?;
    let (p, c) = (positions, channels);
    let pred = config.predicate;
    let k = config.classes;
    let mut raw = RawCounts {
        images: images as u64,
        firing_count: vec![0; c],
        active_images: vec![0; c],
        class_images: vec![0; k],
        active_images_by_class: vec![0; k * c],
        hist: vec![0; config.hist.bins + 2],
        hist_pos: vec![0; config.hist_pos.bins + 1],
        loghist_pos: vec![0; LOG_BINS + 2],
        loghist_neg: vec![0; LOG_BINS + 2],
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Default::default()
    };
    let hist_edges = config.hist.edges();
    let pos_edges = config.hist_pos.edges();
    let log_e = log_edges();
    for n in 0..images {
        let label = match labels {
            Some(l) => {
                let v = *l.get(n).ok_or_else(|| {
                    Error::shape("stats reference", format!("no label for image {n}"))
                })? as usize;
                if v >= k {
                    return Err(Error::shape(
                        "stats reference",
                        format!("label {v} of image {n} is not below {k} classes"),
                    ));
                }
                raw.class_images[v] += 1;
                Some(v)
            }
            None => None,
        };
        for ch in 0..c {
            let active = (0..p)
                .filter(|&q| pred.is_active(x[(n * p + q) * c + ch]))
                .count() as u64;
            raw.firing_count[ch] += active;
            if active > 0 {
                raw.active_images[ch] += 1;
                if let Some(l) = label {
                    raw.active_images_by_class[l * c + ch] += 1;
                }
            }
        }
    }
    for &v in x {
        if v == 0.0 {
            raw.zero_entries += 1;
        }
        if v.is_nan() {
            raw.nan_count += 1;
        } else if v == f32::INFINITY {
            raw.posinf_count += 1;
        } else if v == f32::NEG_INFINITY {
            raw.neginf_count += 1;
        } else {
            raw.min = raw.min.min(v as f64);
            raw.max = raw.max.max(v as f64);
        }
        add(
            &mut raw.hist,
            config.hist.place(v, &hist_edges),
            config.hist.bins,
        );
        match config.hist_pos.place(v, &pos_edges) {
            Some(Bin::In(i)) => raw.hist_pos[i] += 1,
            Some(Bin::Over) => raw.hist_pos[config.hist_pos.bins] += 1,
            _ => {}
        }
        if v > 0.0 {
            add(&mut raw.loghist_pos, log_place(v, &log_e), LOG_BINS);
        } else if v < 0.0 {
            add(&mut raw.loghist_neg, log_place(v, &log_e), LOG_BINS);
        }
    }
    raw.moments = moments(x.iter().filter(|v| v.is_finite()).map(|&v| v as f64));
    let tokens = reference_hoyer(x, images, positions, channels)?;
    raw.hoyer_excluded = tokens.iter().filter(|h| h.is_none()).count() as u64;
    raw.hoyer_moments = moments(tokens.iter().flatten().copied());
    Ok(TapTotals::finalise(
        raw,
        positions,
        channels,
        pred,
        &config.hist,
        &config.hist_pos,
    ))
}

/// Per-token Hoyer sparsity [N * P] (`None` for a token with a NaN or Inf entry).
pub fn reference_hoyer(
    x: &[f32],
    images: usize,
    positions: usize,
    channels: usize,
) -> Result<Vec<Option<f64>>> {
    check(x, images, positions, channels)?;
    if channels == 0 {
        return Ok(vec![Some(1.0); images * positions]);
    }
    Ok(x.chunks(channels).map(hoyer).collect())
}

/// Pooled features [N, C]: the mean over positions, in f64.
pub fn reference_pooled(
    x: &[f32],
    images: usize,
    positions: usize,
    channels: usize,
) -> Result<Vec<f64>> {
    check(x, images, positions, channels)?;
    let mut out = vec![0.0; images * channels];
    for n in 0..images {
        for q in 0..positions {
            for ch in 0..channels {
                out[n * channels + ch] += x[(n * positions + q) * channels + ch] as f64;
            }
        }
    }
    for v in &mut out {
        *v /= positions as f64;
    }
    Ok(out)
}
