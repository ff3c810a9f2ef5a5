//! Per-tap activation statistics, accumulated on the GPU inside the forward pass and finalised
//! in f64 on the CPU, beside their CPU reference functions.
//!
//! - `spec`: the activity predicate and the histograms' bin edges (the definitions).
//! - `joint`: the one joint histogram word per entry that `stats_tap` counts, split after the pass.
//! - `tap`: `TapStats`, the GPU accumulators of one tap and the steps a plan runs at the tap.
//! - `totals`: `TapTotals`, everything a pass yields for a tap (arrays and summary scalars).
//! - `reference`: the same statistics computed on the CPU in f64, for tests.
//!
//! Typical use, per tap `i` chosen for statistics:
//! ```ignore
//! let stats = TapStats::new(&gpu, &forward.taps[i], batch, &config)?;
//! let plan = forward.plan.with_hooks(|t| if t == i { stats.record(&gpu, &forward.tensors[i]) } else { Ok(vec![]) })?;
//! for each batch { write input; stats.set_batch(&gpu, n, labels)?; plan.submit(&gpu); }
//! let totals = stats.finish(&gpu)?;
//! ```

pub mod joint;
pub mod reference;
pub mod spec;
pub mod tap;
pub mod totals;

pub use spec::{LinearHistSpec, PosHistSpec, PosScale, Predicate, StatsConfig};
pub use tap::{TapRead, TapStats};
pub use totals::{Histogram, Moments, RawCounts, TapTotals};
