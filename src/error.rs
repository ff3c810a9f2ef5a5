//! The library's one error type. Every message names the file, key or limit involved, so that
//! the command line can print it as a single line that tells the user what to fix.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("interrupted after {done} of {total} images{}", match kept {
        Some(p) => format!("; the work done is kept in {}: rerun the same command with --resume to finish", p.display()),
        None => String::new(),
    })]
    Interrupted {
        done: usize,
        total: usize,
        kept: Option<std::path::PathBuf>,
    },

    #[error(
        "no GPU adapter found{hint}; on Linux without a GPU install Mesa's software Vulkan driver: apt-get install mesa-vulkan-drivers"
    )]
    NoAdapter { hint: String },

    #[error("could not open a device on adapter '{adapter}': {reason}")]
    Device { adapter: String, reason: String },

    #[error("{what} needs {needed} but the adapter '{adapter}' allows at most {limit}: {advice}")]
    Limit {
        what: String,
        needed: u64,
        limit: u64,
        adapter: String,
        advice: String,
    },

    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },

    #[error("{op}: {problem}")]
    Shape { op: String, problem: String },

    #[error("{}: {problem}", path.display())]
    File { path: PathBuf, problem: String },

    #[error("{}: tensor '{key}': {problem}", path.display())]
    Tensor {
        path: PathBuf,
        key: String,
        problem: String,
    },

    #[error("{0}")]
    Usage(String),

    /// A statistic that does not exist for these inputs (a constant RDM has no rank
    /// correlation; RSA needs three images or more).
    #[error("{what} is undefined: {why}")]
    Undefined { what: String, why: String },
}

impl Error {
    pub fn file(path: impl Into<PathBuf>, problem: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.into(),
            problem: problem.to_string(),
        }
    }

    pub fn shape(op: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Error::Shape {
            op: op.into(),
            problem: problem.to_string(),
        }
    }
}
