//! The null-code probe of a tap: per token, Hoyer sparsity and the cosine to the tap's dominant
//! binary pattern (`shaders/nullcode_probe.wgsl`).

use crate::error::{Error, Result};
use crate::gpu::ops::{check_len, check_loop_steps};
use crate::gpu::{Dispatch, Gpu, Tensor, grid};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Meta {
    rows: u32,
    channels: u32,
    p_norm: f32,
    /// Always 0: hides values from the compiler (the kernel's `keep`).
    opaque: u32,
}

/// `hoyer[r]`, `cos[r]` for the `rows` rows of `x` ([rows, C]) and the 0/1 `pattern` [C]
/// holding `ones` ones.
pub fn nullcode_probe(
    gpu: &Gpu,
    x: &Tensor,
    pattern: &Tensor,
    ones: usize,
    rows: usize,
    hoyer: &Tensor,
    cos: &Tensor,
) -> Result<Dispatch> {
    const OP: &str = "nullcode_probe";
    let c = pattern.len();
    if c == 0 {
        return Err(Error::shape(OP, "no channels"));
    }
    // One invocation walks all channels of its row: one loop step each.
    check_loop_steps(
        OP,
        &format!("{c} channels"),
        c,
        "probe a layer with fewer channels",
    )?;
    check_len(OP, "x", x, rows * c)?;
    check_len(OP, "hoyer", hoyer, rows)?;
    check_len(OP, "cos", cos, rows)?;
    let meta = Meta {
        rows: rows as u32,
        channels: c as u32,
        p_norm: (ones as f32).sqrt(),
        opaque: 0,
    };
    Ok(Dispatch::new(
        gpu,
        OP,
        &[],
        &meta,
        &[x, pattern, hoyer, cos],
        grid(gpu, rows.div_ceil(64)),
    )?
    .with_flops(5 * (rows * c) as u64))
}
