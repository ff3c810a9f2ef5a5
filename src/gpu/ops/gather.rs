//! Channel selection: a tap's activation restricted to chosen channels (the kept or dropped
//! channel groups of `prune`).

use crate::error::{Error, Result};
use crate::gpu::ops::check_len;
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherMeta {
    rows: u32,
    channels: u32,
    k: u32,
    _pad: u32,
}

/// `out[r, k] = src[r, idx[k]]` for `rows` rows of `channels` values: `src` holds at least
/// `rows * channels` values, `idx` (u32) `k` channel indices below `channels` (the caller checks
/// them: the kernel does not), `out` at least `rows * k`.
pub fn gather_channels(
    gpu: &Gpu,
    src: &Tensor,
    idx: &Tensor,
    out: &Tensor,
    rows: usize,
    channels: usize,
    k: usize,
) -> Result<Dispatch> {
    const OP: &str = "gather_channels";
    if k == 0 || rows == 0 || k > channels {
        return Err(Error::shape(
            OP,
            format!("{k} of {channels} channels over {rows} rows"),
        ));
    }
    check_len(OP, "src", src, rows * channels)?;
    check_len(OP, "idx", idx, k)?;
    check_len(OP, "out", out, rows * k)?;
    if rows as u64 * channels as u64 > u32::MAX as u64 {
        return Err(Error::shape(
            OP,
            "input over the 2^32 elements a kernel can index",
        ));
    }
    let meta = GatherMeta {
        rows: rows as u32,
        channels: channels as u32,
        k: k as u32,
        _pad: 0,
    };
    Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[src, idx, out],
        grid(gpu, (rows * k).div_ceil(256)),
    )
}
