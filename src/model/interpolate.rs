//! Bicubic resampling of position-embedding tables, as PyTorch's `F.interpolate(mode='bicubic',
//! align_corners=False, antialias=False)` does it (aten/src/ATen/native/UpSample.h): source
//! coordinate `scale * (dst + 0.5) - 0.5`, Keys' cubic with A = -0.75, border pixels repeated.

const A: f64 = -0.75;

fn cubic_weights(t: f64) -> [f64; 4] {
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// Resize a channels-last grid `src` [in_h, in_w, C] to [out_h, out_w, C].
/// `scale_h`/`scale_w` are the source-per-destination steps PyTorch uses: `in / out` when the
/// call gives `size=`, `1 / scale_factor` when it gives `scale_factor=`.
pub fn bicubic(
    src: &[f32],
    (in_h, in_w): (usize, usize),
    channels: usize,
    (out_h, out_w): (usize, usize),
    (scale_h, scale_w): (f64, f64),
) -> Vec<f32> {
    assert_eq!(src.len(), in_h * in_w * channels);
    let mut out = vec![0.0f32; out_h * out_w * channels];
    let tap = |pos: f64, size: usize| -> ([usize; 4], [f64; 4]) {
        let base = pos.floor();
        let w = cubic_weights(pos - base);
        let idx = std::array::from_fn(|i| {
            (base as i64 - 1 + i as i64).clamp(0, size as i64 - 1) as usize
        });
        (idx, w)
    };
    for oy in 0..out_h {
        let (ys, wy) = tap(scale_h * (oy as f64 + 0.5) - 0.5, in_h);
        for ox in 0..out_w {
            let (xs, wx) = tap(scale_w * (ox as f64 + 0.5) - 0.5, in_w);
            for c in 0..channels {
                let mut acc = 0.0f64;
                for (i, &y) in ys.iter().enumerate() {
                    let mut row = 0.0f64;
                    for (j, &x) in xs.iter().enumerate() {
                        row += wx[j] * src[(y * in_w + x) * channels + c] as f64;
                    }
                    acc += wy[i] * row;
                }
                out[(oy * out_w + ox) * channels + c] = acc as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_when_sizes_match() {
        let src: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.25).collect();
        let out = bicubic(&src, (2, 3), 4, (2, 3), (1.0, 1.0));
        assert_eq!(out, src);
    }

    #[test]
    fn constant_stays_constant() {
        let src = vec![1.5f32; 4 * 4];
        let out = bicubic(&src, (4, 4), 1, (7, 5), (4.0 / 7.0, 4.0 / 5.0));
        assert!(out.iter().all(|&v| (v - 1.5).abs() < 1e-6));
    }
}
