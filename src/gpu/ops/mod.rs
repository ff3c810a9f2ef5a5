//! One constructor function per kernel: each checks shapes and returns a `Dispatch`.

mod attention;
pub mod conv;
pub mod gather;
mod layernorm;
pub mod layout;
mod matmul;
pub mod pool;
pub mod probe;
pub mod split;
mod texture_launch;
mod vit;

pub use attention::{Attention, AttentionVariant, attention};
pub use layernorm::{LayernormVariant, layernorm, layernorm_with};
pub use matmul::{
    Act, Batch, Epilogue, MatmulVariant, SUBGROUP_COLS, SUBGROUP_ROWS, TEXTURE_WIDTH, matmul,
    matmul_batched, matmul_with, preferred_variant,
};
pub use vit::{patch_im2col, vit_tokens};

use crate::error::{Error, Result};
use crate::gpu::Tensor;

/// Fail with a message naming the op when `t` does not hold at least `len` elements.
pub(crate) fn check_len(op: &str, what: &str, t: &Tensor, len: usize) -> Result<()> {
    if t.len() < len {
        return Err(Error::shape(
            op,
            format!(
                "{what} holds {} elements ({:?}), {len} needed",
                t.len(),
                t.shape
            ),
        ));
    }
    Ok(())
}
