//! Golden files (tests/golden/<fixture>.golden.safetensors, written by make_golden.py) and the
//! comparisons that report which tap, which element, expected and got.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail, ensure};
use safetensors::{Dtype, SafeTensors};

/// A shape and its row-major f32 values.
pub type Array = (Vec<usize>, Vec<f32>);

/// One fixture's reference values, all f32.
#[derive(Debug, Clone)]
pub struct Golden {
    pub fixture: String,
    /// [N, 3, H, W]
    pub input: Array,
    /// [N, classes], for models with a head.
    pub logits: Option<Array>,
    /// (name, [N, P, C], values) in forward order (the file's `tap_order`). P = tokens
    /// including CLS for a ViT, H*W in row-major (h, w) order for a CNN.
    pub taps: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Debugging aids stored as `extra:<name>` (e.g. dinov2_hf's interpolated position table
    /// under `embeddings.position_embeddings.interpolated`).
    pub extras: Vec<(String, Vec<usize>, Vec<f32>)>,
}

fn f32_values(name: &str, view: &safetensors::tensor::TensorView<'_>) -> anyhow::Result<Array> {
    ensure!(
        view.dtype() == Dtype::F32,
        "{name}: dtype {:?}, expected F32",
        view.dtype()
    );
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((view.shape().to_vec(), values))
}

impl Golden {
    pub fn load(path: &Path) -> anyhow::Result<Golden> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let ctx = || format!("{}", path.display());
        let (_, meta) = SafeTensors::read_metadata(&bytes).with_context(ctx)?;
        let file_meta = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).with_context(ctx)?;
        let get = |name: &str| -> anyhow::Result<Option<Array>> {
            match st.tensor(name) {
                Ok(view) => Ok(Some(f32_values(name, &view).with_context(ctx)?)),
                Err(_) => Ok(None),
            }
        };

        let input = get("input")?.with_context(|| format!("{}: no \"input\"", ctx()))?;
        ensure!(
            input.0.len() == 4 && input.0[1] == 3,
            "{}: input shape {:?}, expected [N, 3, H, W]",
            ctx(),
            input.0
        );
        let n = input.0[0];
        let logits = get("logits")?;
        if let Some((shape, _)) = &logits {
            ensure!(
                shape.len() == 2 && shape[0] == n,
                "{}: logits shape {shape:?}",
                ctx()
            );
        }

        let order = file_meta
            .get("tap_order")
            .with_context(|| format!("{}: no tap_order in the metadata", ctx()))?;
        let mut taps = Vec::new();
        for name in order.split(',').filter(|s| !s.is_empty()) {
            let (shape, values) = get(&format!("tap:{name}"))?
                .with_context(|| format!("{}: tap_order names {name} but no tap:{name}", ctx()))?;
            ensure!(
                shape.len() == 3 && shape[0] == n,
                "{}: tap {name} has shape {shape:?}, expected [{n}, P, C]",
                ctx()
            );
            taps.push((name.to_string(), shape, values));
        }
        let mut extras = Vec::new();
        let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
        names.sort();
        for name in names {
            if let Some(tap) = name.strip_prefix("tap:") {
                if !taps.iter().any(|t| t.0 == tap) {
                    bail!("{}: {name} is missing from tap_order", ctx());
                }
            } else if let Some(extra) = name.strip_prefix("extra:") {
                let (shape, values) = get(&name)?.expect("listed tensor");
                extras.push((extra.to_string(), shape, values));
            }
        }
        let fixture = file_meta.get("fixture").cloned().unwrap_or_else(|| {
            path.file_name()
                .map(|f| f.to_string_lossy().replace(".golden.safetensors", ""))
                .unwrap_or_default()
        });
        Ok(Golden {
            fixture,
            input,
            logits,
            taps,
            extras,
        })
    }

    /// (N, H, W) of the input batch.
    pub fn input_nhw(&self) -> (usize, usize, usize) {
        let s = &self.input.0;
        (s[0], s[2], s[3])
    }

    pub fn tap(&self, name: &str) -> Option<&(String, Vec<usize>, Vec<f32>)> {
        self.taps.iter().find(|t| t.0 == name)
    }

    pub fn tap_names(&self) -> Vec<&str> {
        self.taps.iter().map(|t| t.0.as_str()).collect()
    }

    pub fn extra(&self, name: &str) -> Option<&(String, Vec<usize>, Vec<f32>)> {
        self.extras.iter().find(|t| t.0 == name)
    }
}

/// The multi-index of flat index `i` in a row-major `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &s) in shape.iter().enumerate().rev() {
        if s > 0 {
            idx[d] = i % s;
            i /= s;
        }
    }
    idx
}

/// Outcome of an element-wise comparison.
struct Mismatch {
    /// Elements outside atol + rtol * |want| (or not finite).
    failing: usize,
    /// The failing element furthest beyond its tolerance.
    worst: Option<usize>,
    max_abs: f32,
}

fn compare(got: &[f32], want: &[f32], atol: f32, rtol: f32) -> Mismatch {
    let mut m = Mismatch {
        failing: 0,
        worst: None,
        max_abs: 0.0,
    };
    let mut worst_excess = f32::NEG_INFINITY;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        // NaN or Inf on either side is a failure, ranked above any finite one.
        let excess = if diff.is_finite() {
            diff - (atol + rtol * w.abs())
        } else {
            f32::INFINITY
        };
        if diff.is_finite() {
            m.max_abs = m.max_abs.max(diff);
        } else {
            m.max_abs = f32::NAN;
        }
        if excess > 0.0 {
            m.failing += 1;
            if excess > worst_excess {
                worst_excess = excess;
                m.worst = Some(i);
            }
        }
    }
    m
}

fn report(
    name: &str,
    shape: Option<&[usize]>,
    got: &[f32],
    want: &[f32],
    atol: f32,
    rtol: f32,
    m: &Mismatch,
) -> String {
    let i = m.worst.expect("a failing element");
    let at = match shape {
        Some(s) => format!("index {i} = {:?} of shape {s:?}", unravel(i, s)),
        None => format!("index {i}"),
    };
    format!(
        "{name}: {} of {} values differ beyond atol {atol:e} + rtol {rtol:e} * |expected|; \
         worst at {at}: expected {}, got {} (|diff| {:e}); max abs error {:e}",
        m.failing,
        want.len(),
        want[i],
        got[i],
        (got[i] - want[i]).abs(),
        m.max_abs,
    )
}

/// Panic unless every `|got - want| <= atol + rtol * |want|` (NaN and Inf never pass). The
/// message names `name`, the worst element's index, expected, got and the max abs error.
/// Returns the max abs error.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    close_or_panic(name, None, got, want, atol, rtol)
}

/// As [`assert_close`], also giving the worst element as a multi-index into `shape`.
pub fn assert_close_shaped(
    name: &str,
    shape: &[usize],
    got: &[f32],
    want: &[f32],
    atol: f32,
    rtol: f32,
) -> f32 {
    close_or_panic(name, Some(shape), got, want, atol, rtol)
}

fn close_or_panic(
    name: &str,
    shape: Option<&[usize]>,
    got: &[f32],
    want: &[f32],
    atol: f32,
    rtol: f32,
) -> f32 {
    if got.len() != want.len() {
        panic!(
            "{name}: got {} values, expected {}{}",
            got.len(),
            want.len(),
            shape.map(|s| format!(" (shape {s:?})")).unwrap_or_default()
        );
    }
    if let Some(s) = shape {
        assert_eq!(
            s.iter().product::<usize>(),
            want.len(),
            "{name}: shape {s:?} does not match {} values",
            want.len()
        );
    }
    let m = compare(got, want, atol, rtol);
    if m.failing > 0 {
        panic!("{}", report(name, shape, got, want, atol, rtol, &m));
    }
    m.max_abs
}

/// Compare the taps a forward pass produced, `got` = (tap name, [N, P, C] values) in the
/// model's forward order, with the golden taps, in the golden's forward order. Panics at the
/// FIRST golden tap that is missing, has the wrong size, or differs, naming it (an error in one
/// layer spoils every later tap, so the first is the one to look at). The golden taps must
/// appear in `got` in the same relative order; taps the golden file lacks are ignored.
/// Returns each golden tap's max abs error, in order.
pub fn compare_taps<S: AsRef<str>, V: AsRef<[f32]>>(
    golden: &Golden,
    got: &[(S, V)],
    atol: f32,
    rtol: f32,
) -> Vec<(String, f32)> {
    let position: HashMap<&str, usize> = got
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_ref(), i))
        .collect();
    let total = golden.taps.len();
    let mut errors: Vec<(String, f32)> = Vec::with_capacity(total);
    let mut last_pos: Option<(usize, &str)> = None;
    for (k, (name, shape, want)) in golden.taps.iter().enumerate() {
        // "<fixture>: tap `x` (#k of K in forward order) is the first that differs: <why>",
        // then the max abs errors of the taps just before it, which did match.
        let fail = |why: String| -> ! {
            let earlier: Vec<String> = errors
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(|(n, e)| format!("{n} {e:.1e}"))
                .collect();
            let earlier = if earlier.is_empty() {
                String::new()
            } else {
                format!(
                    "\nearlier taps matched; max abs error of the last ones: {}",
                    earlier.join(", ")
                )
            };
            panic!(
                "{}: tap `{name}` (#{} of {total} in forward order) is the first that differs: {why}{earlier}",
                golden.fixture,
                k + 1,
            )
        };
        let Some(&pos) = position.get(name.as_str()) else {
            let names: Vec<&str> = got.iter().map(|(n, _)| n.as_ref()).collect();
            fail(format!(
                "the forward pass has no such tap; it has {names:?}"
            ));
        };
        if let Some((prev, prev_name)) = last_pos
            && pos < prev
        {
            fail(format!(
                "it comes before `{prev_name}` in the forward pass, after it in the golden file"
            ));
        }
        last_pos = Some((pos, name.as_str()));
        let values = got[pos].1.as_ref();
        if values.len() != want.len() {
            fail(format!(
                "{} values, expected {} ({shape:?})",
                values.len(),
                want.len()
            ));
        }
        let m = compare(values, want, atol, rtol);
        if m.failing > 0 {
            fail(report("values", Some(shape), values, want, atol, rtol, &m));
        }
        errors.push((name.clone(), m.max_abs));
    }
    errors
}

/// Compare logits with the golden ones (which must exist); returns the max abs error.
pub fn compare_logits(golden: &Golden, got: &[f32], atol: f32, rtol: f32) -> f32 {
    let (shape, want) = golden
        .logits
        .as_ref()
        .unwrap_or_else(|| panic!("{}: the golden file has no logits", golden.fixture));
    assert_close_shaped(
        &format!("{} logits", golden.fixture),
        shape,
        got,
        want,
        atol,
        rtol,
    )
}

/// A numpy reference file of mixed dtypes (tests/golden/stats/, tests/golden/nullcode/): i64
/// arrays as i64, f64 and f32 arrays as f64, and the file's string metadata.
pub struct TypedReference {
    pub ints: HashMap<String, Vec<i64>>,
    pub floats: HashMap<String, Vec<f64>>,
    pub metadata: HashMap<String, String>,
}

pub fn load_typed(path: &Path) -> TypedReference {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (mut ints, mut floats) = (HashMap::new(), HashMap::new());
    for (name, view) in st.tensors() {
        let data = view.data();
        match view.dtype() {
            Dtype::I64 => {
                ints.insert(
                    name,
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                );
            }
            Dtype::F64 => {
                floats.insert(
                    name,
                    data.chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                );
            }
            Dtype::F32 => {
                floats.insert(
                    name,
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64)
                        .collect(),
                );
            }
            other => panic!("{name}: unexpected dtype {other:?}"),
        }
    }
    TypedReference {
        ints,
        floats,
        metadata,
    }
}
