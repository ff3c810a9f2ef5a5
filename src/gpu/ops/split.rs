//! Splitting row-wise work that is larger than one launch can take.
//!
//! Adapters cap the bytes one storage binding may cover (128 MiB on lavapipe, often less on
//! laptops) and the workgroups of one dispatch dimension (65,535). Ops whose output rows are
//! independent (matmul, LayerNorm) split such work into row chunks: each launch binds windows
//! of its tensors (`Tensor::window`) and sees a smaller problem, so the kernels stay unchanged.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// A tensor the op binds by row windows: each row holds `per_row` elements, and the window of
/// rows `r0..r1` starts at element `r0 * per_row`.
#[derive(Debug, Clone, Copy)]
pub struct RowWindow {
    pub what: &'static str,
    pub per_row: usize,
}

/// Row ranges covering `0..rows` such that every window of a range fits one storage binding,
/// every range starts at an offset the adapter can bind, and no range has more than
/// `max_rows_per_launch` rows (the rows whose grid still fits the workgroup limit). One range
/// when the work fits a single launch.
pub fn row_chunks(
    gpu: &Gpu,
    op: &str,
    rows: usize,
    windows: &[RowWindow],
    max_rows_per_launch: usize,
) -> Result<Vec<Range<usize>>> {
    let binding = gpu.limits.max_storage_buffer_binding_size as usize;
    let align = gpu.limits.min_storage_buffer_offset_alignment.max(4) as usize;
    let mut cap = max_rows_per_launch;
    for w in windows {
        cap = cap.min(binding / (w.per_row * 4).max(1));
    }
    if rows <= cap {
        return Ok(std::iter::once(0..rows).collect());
    }
    // A chunk boundary r must put every window's start (r * per_row * 4 bytes) on the
    // alignment: r must be a multiple of align / gcd(per_row * 4, align) for each window.
    let step = windows
        .iter()
        .map(|w| align / gcd(w.per_row * 4, align))
        .fold(1, lcm);
    let chunk = cap / step * step;
    if chunk == 0 {
        let widest = windows
            .iter()
            .max_by_key(|w| w.per_row)
            .expect("cap < rows");
        return Err(Error::Limit {
            what: format!(
                "{op}: {step} rows of {} ({} elements each; the fewest rows that split on the \
                 adapter's {align}-byte offset alignment)",
                widest.what, widest.per_row
            ),
            needed: (step * widest.per_row * 4) as u64,
            limit: binding as u64,
            adapter: gpu.info.name.clone(),
            advice: "the rows are too wide to split; use a model with narrower layers or an \
                     adapter with a larger storage binding limit"
                .into(),
        });
    }
    Ok((0..rows)
        .step_by(chunk)
        .map(|r0| r0..(r0 + chunk).min(rows))
        .collect())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_and_lcm() {
        assert_eq!(gcd(12, 256), 4);
        assert_eq!(lcm(64, 16), 64);
        assert_eq!(lcm(3, 4), 12);
    }
}
