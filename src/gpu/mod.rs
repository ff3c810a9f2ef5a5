//! The GPU engine: device and limits, the shader registry and pipeline cache, tensors, and the
//! recorded `Plan` of kernel dispatches. Kernels themselves are in `ops`, one function each.

pub mod context;
pub mod ops;
pub mod plan;
pub mod shaders;
pub mod tensor;
pub mod tuning;

pub use context::{AdapterSummary, Gpu, GpuOptions, LowerLimits};
pub use plan::{
    Dispatch, KernelProfile, Plan, Resource, Step, TAP_TEXTURE, TextureCopy, drop_repeated_copies,
    grid,
};
pub use tensor::{Elem, Tensor, beyond_f16};

/// Loop iterations one shader invocation may run, in all. llvmpipe (lavapipe's compiler) ends
/// every loop of an invocation once the invocation has run 65,535 loop iterations in total
/// (gallivm's LP_MAX_TGSI_LOOP_ITERATIONS: one counter per function, never reset), silently:
/// the results are simply wrong. Every kernel whose loops grow with a shape is kept within this
/// budget, a margin below that cap, on every adapter (it costs nothing elsewhere): by splitting
/// its work, by running another kernel, or by refusing the shape with an error.
pub const LOOP_BUDGET: usize = 60_000;
