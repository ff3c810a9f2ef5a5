//! sparsescope: activation statistics of vision networks, computed on any wgpu adapter.
//!
//! `gpu` holds the engine (device, kernels, plans), `model` the architectures built on it,
//! `stats` the statistics fed from taps of the forward pass, `data` the image input.

pub mod analysis;
pub mod bench;
pub mod data;
pub mod error;
pub mod extract;
pub mod fuzz;
pub mod gpu;
pub mod merge;
pub mod model;
pub mod npy;
pub mod outdir;
pub mod pass;
pub mod predict;
pub mod rdm;
pub mod report;
pub mod run;
pub mod stats;

pub use error::{Error, Result};
