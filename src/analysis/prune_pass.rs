//! The GPU pass behind the flat-feature curves of `prune`: the model runs again over the run's
//! images, and at each chosen tap the activation is split into channel groups, each group's
//! [P * K] rows feeding a flat Gram accumulator of its own (`gather_channels`, then
//! `GramAccumulator`).
//!
//! Why groups: the kept channels of pruning level k are the channels of rank >= floor(kC/100)
//! in an ordering, so with the ten groups between consecutive levels, level k keeps exactly
//! groups k..9, and `Gram::concat` of those groups' Grams is the kept features' Gram, with the
//! kept dimension P * C_kept, means over kept entries only, and no cancellation. One forward
//! pass per batch serves every level of every ordering (the ranked one and each random one) of
//! every tap of the pass, at the cost of one extra Gram of the tap per ordering (the groups
//! partition the channels), instead of one per level.
//!
//! Memory: an exact group keeps its [N, P * K] rows on the GPU; all groups of a tap hold
//! `orderings` times the tap's flat features. Taps whose exact groups exceed the budget are
//! sketched (a seeded count sketch per group, stated in the output); taps are packed into as few
//! passes over the images as the budget allows, in forward order.

use crate::data::{BatchLoader, BatchSource, NpyBatches, Preprocess};
use crate::error::{Error, Result};
use crate::gpu::ops::gather::gather_channels;
use crate::gpu::{Gpu, Step, Tensor};
use crate::model::Network;
use crate::outdir::RunDir;
use crate::rdm::{FlatMode, Gram, GramAccumulator};

/// One tap's channel groups: `groups[o][g]` lists the channels of group g of ordering o
/// (empty groups allowed: a tap of fewer than 10 channels has some).
#[derive(Debug, Clone)]
pub struct GroupedTap {
    /// Index of the tap in `Network::taps`.
    pub model_tap: usize,
    pub name: String,
    pub positions: usize,
    pub channels: usize,
    pub groups: Vec<Vec<Vec<u32>>>,
}

/// How the flat Grams are accumulated.
#[derive(Debug, Clone)]
pub struct PassOptions {
    pub batch: usize,
    /// GPU bytes all groups of the taps of one pass may hold.
    pub budget: u64,
    pub sketch_dim: usize,
    pub seed: u64,
    /// Decoding threads.
    pub threads: usize,
}

/// A distinct sketch seed per (tap, ordering, group), so that the groups' sketch errors are
/// independent.
fn group_seed(seed: u64, tap: usize, ordering: usize, group: usize) -> u64 {
    let mut g = crate::analysis::SplitMix64::new(
        seed ^ ((tap as u64) << 40) ^ ((ordering as u64) << 20) ^ group as u64,
    );
    g.next_u64()
}

fn mode_for(mode: FlatMode, tap: usize, ordering: usize, group: usize) -> FlatMode {
    match mode {
        FlatMode::Exact => FlatMode::Exact,
        FlatMode::Sketch { dim, seed } => FlatMode::Sketch {
            dim,
            seed: group_seed(seed, tap, ordering, group),
        },
    }
}

/// GPU bytes of one tap's groups in `mode`.
fn tap_bytes(t: &GroupedTap, mode: FlatMode, capacity: usize, batch: usize) -> u64 {
    t.groups
        .iter()
        .flatten()
        .filter(|g| !g.is_empty())
        .map(|g| GramAccumulator::bytes(mode, t.positions * g.len(), capacity, batch))
        .sum()
}

/// The batches of the run's images again, in the run's order: its image files (from
/// images.txt), or its preprocessed .npy input.
pub fn rerun_source(
    run: &RunDir,
    preprocess: &Preprocess,
    batch: usize,
    threads: usize,
) -> Result<BatchSource> {
    let input = run.input_path()?;
    let is_npy = input
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let source = if is_npy {
        BatchSource::Npy(NpyBatches::open(&input, batch)?)
    } else {
        BatchSource::Images(BatchLoader::new(
            run.image_set()?,
            preprocess.clone(),
            batch,
            threads,
        )?)
    };
    if source.len() != run.n_images() {
        return Err(Error::file(
            &input,
            format!(
                "holds {} images now, the run used {}; the flat pruning curves need the same images",
                source.len(),
                run.n_images()
            ),
        ));
    }
    Ok(source)
}

/// What the pass hands over per (tap, ordering) once a pass is done: the tap's index in
/// `taps`, the ordering, how the tap was accumulated (exact, or sketched with group seeds
/// derived from this seed), and the Gram of each group (`None` for an empty group).
pub type OnOrdering<'a> = dyn FnMut(usize, usize, FlatMode, Vec<Option<Gram>>) -> Result<()> + 'a;

/// Run `model` over the batches `make_source` yields (the run's images, `capacity` of them,
/// `height` x `width`), accumulate the flat Gram of every group of every tap, and hand them to
/// `on_ordering` one ordering at a time (so that the CPU holds one ordering's N x N Grams at
/// once). Returns the number of passes over the images.
#[allow(clippy::too_many_arguments)]
pub fn group_grams(
    gpu: &Gpu,
    model: &dyn Network,
    taps: &[GroupedTap],
    (height, width): (usize, usize),
    capacity: usize,
    make_source: &dyn Fn() -> Result<BatchSource>,
    options: &PassOptions,
    progress: &mut dyn FnMut(usize, usize),
    on_ordering: &mut OnOrdering,
) -> Result<usize> {
    let batch = options.batch.clamp(1, capacity.max(1));
    let sketch = FlatMode::Sketch {
        dim: options.sketch_dim,
        seed: options.seed,
    };
    // Per tap: exact when its groups fit the budget alone, else sketched; then taps packed into
    // passes in forward order.
    let mut modes = Vec::with_capacity(taps.len());
    let mut costs = Vec::with_capacity(taps.len());
    for t in taps {
        let exact = tap_bytes(t, FlatMode::Exact, capacity, batch);
        let sketched = tap_bytes(t, sketch, capacity, batch);
        let (mode, cost) = if exact <= options.budget {
            (FlatMode::Exact, exact)
        } else if sketched <= options.budget {
            (sketch, sketched)
        } else {
            return Err(Error::Usage(format!(
                "tap '{}': its channel groups need {:.1} MiB of GPU memory even sketched, over \
                 the budget of {:.1} MiB; raise --rdm-budget, lower --random-repeats or \
                 --sketch-dim, or use --no-flat",
                t.name,
                sketched as f64 / (1 << 20) as f64,
                options.budget as f64 / (1 << 20) as f64
            )));
        };
        modes.push(mode);
        costs.push(cost);
    }
    let mut passes: Vec<Vec<usize>> = Vec::new();
    let mut used = 0u64;
    for (k, &c) in costs.iter().enumerate() {
        if passes.is_empty() || used + c > options.budget {
            passes.push(Vec::new());
            used = 0;
        }
        passes.last_mut().expect("pushed").push(k);
        used += c;
    }

    let forward = model.forward(gpu, batch, height, width)?;
    let image_len = 3 * height * width;
    for (pass_index, members) in passes.iter().enumerate() {
        // One gather scratch serves every group in turn: the steps run in order in one stream.
        let widest = members
            .iter()
            .flat_map(|&k| {
                taps[k]
                    .groups
                    .iter()
                    .flatten()
                    .map(move |g| taps[k].positions * g.len())
            })
            .max()
            .unwrap_or(1)
            .max(1);
        let scratch = gpu.zeros("prune gather", &[batch * widest])?;
        let mut accs: Vec<Vec<Vec<Option<GramAccumulator>>>> = Vec::new();
        let mut index_buffers: Vec<Tensor> = Vec::new();
        let mut slot = vec![None; forward.taps.len()];
        let mut steps_of: Vec<Vec<Step>> = Vec::new();
        for (m, &k) in members.iter().enumerate() {
            let t = &taps[k];
            let info = forward.taps.get(t.model_tap).ok_or_else(|| {
                Error::shape(
                    "prune pass",
                    format!("tap '{}' is not in the model", t.name),
                )
            })?;
            if info.name != t.name || info.positions != t.positions || info.channels != t.channels {
                return Err(Error::Usage(format!(
                    "tap '{}' is [{}, {}] in the run but '{}' [{}, {}] in the model now: \
                     was the run made with another model or input size?",
                    t.name, t.positions, t.channels, info.name, info.positions, info.channels
                )));
            }
            let tensor = &forward.tensors[t.model_tap];
            let mut steps = Vec::new();
            let mut per_ordering = Vec::new();
            for (o, groups) in t.groups.iter().enumerate() {
                let mut per_group = Vec::new();
                for (g, channels) in groups.iter().enumerate() {
                    if channels.is_empty() {
                        per_group.push(None);
                        continue;
                    }
                    if let Some(&c) = channels.iter().find(|&&c| c as usize >= t.channels) {
                        return Err(Error::shape(
                            "prune pass",
                            format!("channel {c} of tap '{}' of {} channels", t.name, t.channels),
                        ));
                    }
                    let kc = channels.len();
                    let idx = gpu.upload::<u32>("prune channels", &[kc], channels)?;
                    let dim = t.positions * kc;
                    let acc = GramAccumulator::new(
                        gpu,
                        mode_for(modes[k], k, o, g),
                        dim,
                        capacity,
                        batch,
                    )?;
                    steps.push(Step::Kernel(gather_channels(
                        gpu,
                        tensor,
                        &idx,
                        &scratch,
                        batch * t.positions,
                        t.channels,
                        kc,
                    )?));
                    steps.extend(acc.steps(gpu, &scratch.view(&[batch, dim]))?);
                    index_buffers.push(idx);
                    per_group.push(Some(acc));
                }
                per_ordering.push(per_group);
            }
            accs.push(per_ordering);
            slot[t.model_tap] = Some(m);
            steps_of.push(steps);
        }
        let plan = forward.plan.with_hooks(|i| {
            Ok(slot[i]
                .map(|m: usize| steps_of[m].clone())
                .unwrap_or_default())
        })?;

        let mut seen = 0usize;
        for b in make_source()? {
            let b = b?;
            if let Some((path, why)) = b.skipped.first() {
                return Err(Error::file(
                    path,
                    format!(
                        "unreadable now ({why}), but the run read it; the second pass needs the same images"
                    ),
                ));
            }
            let n = b.len();
            if n == 0 {
                continue;
            }
            if b.indices.first() != Some(&seen) {
                return Err(Error::shape(
                    "prune pass",
                    format!(
                        "batch starts at image {:?}, expected {seen}",
                        b.indices.first()
                    ),
                ));
            }
            for acc in accs.iter_mut().flatten().flatten().flatten() {
                acc.begin_batch(gpu, n)?;
            }
            let mut data = b.data;
            data.resize(batch * image_len, 0.0);
            gpu.write(&forward.input, &data);
            plan.run(gpu)?;
            seen += n;
            progress(seen, pass_index);
        }
        if seen != capacity {
            return Err(Error::Usage(format!(
                "the second pass read {seen} images, the run has {capacity}"
            )));
        }
        for (m, &k) in members.iter().enumerate() {
            for (o, groups) in accs[m].iter().enumerate() {
                let grams = groups
                    .iter()
                    .map(|a| a.as_ref().map(|a| a.finish(gpu)).transpose())
                    .collect::<Result<Vec<_>>>()?;
                on_ordering(k, o, modes[k], grams)?;
            }
        }
        drop(index_buffers);
    }
    Ok(passes.len())
}
