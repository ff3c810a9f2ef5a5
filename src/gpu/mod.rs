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
    Dispatch, Plan, Resource, Step, TAP_TEXTURE, TextureCopy, drop_repeated_copies, grid,
};
pub use tensor::{Elem, Tensor, beyond_f16};
