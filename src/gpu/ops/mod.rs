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

pub use attention::{Attention, AttentionVariant, attention, fused_loop_steps};
pub use layernorm::{LayernormVariant, layernorm, layernorm_with};
pub use matmul::{
    Act, Batch, Epilogue, MatmulVariant, SUBGROUP_COLS, SUBGROUP_ROWS, TEXTURE_WIDTH, matmul,
    matmul_batched, matmul_with, preferred_variant,
};
pub use vit::{patch_im2col, vit_tokens};

use crate::error::{Error, Result};
use crate::gpu::{LOOP_BUDGET, Tensor};

/// Fail with a message naming the op when one invocation of its kernel would run more than
/// `gpu::LOOP_BUDGET` loop steps (on llvmpipe its loops would end early and the results be wrong,
/// silently): `what` names the shape that makes the `steps`, `advice` says what to change.
pub(crate) fn check_loop_steps(op: &str, what: &str, steps: usize, advice: &str) -> Result<()> {
    if steps <= LOOP_BUDGET {
        return Ok(());
    }
    Err(Error::shape(
        op,
        format!(
            "{what}: {steps} loop steps in one invocation, over the {LOOP_BUDGET} that every \
             adapter runs; {advice}"
        ),
    ))
}

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
