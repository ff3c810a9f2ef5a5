//! The command line: parse, call the library, print. Errors print as one line and exit 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use sparsescope::data::BatchSource;
use sparsescope::extract::{ExtractOptions, extract};
use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};
use sparsescope::predict::predict;
use sparsescope::rdm::Measure;
use sparsescope::run::{RunOptions, RunReport, Shard};
use sparsescope::stats::StatsConfig;

#[derive(Parser)]
#[command(
    name = "sparsescope",
    version,
    about = "How sparse is a vision network's code, and what shape do its representations take? Forward passes and activation statistics on any wgpu GPU."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    gpu: GpuArgs,
    /// No progress bars or tables, only errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
struct GpuArgs {
    /// Graphics backend: vulkan, metal, dx12 or gl (default: the best adapter of any).
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Use the adapter whose name contains this text (case-insensitive).
    #[arg(long, global = true)]
    adapter: Option<String>,
}

#[derive(Args)]
struct ModelArgs {
    /// Architecture family instead of detecting it from tensor names: vit, dinov2.
    #[arg(long)]
    arch: Option<String>,
    /// Attention heads of a ViT (default: width / 64, as in every timm and DINOv2 release).
    #[arg(long)]
    heads: Option<usize>,
    /// Store weight matrices and convolution kernels on the GPU as f16 (half their memory;
    /// arithmetic stays f32). Needs an adapter with SHADER_F16.
    #[arg(long)]
    f16_weights: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's architecture, parameter count, and every tap with its [P, C] shape.
    Inspect {
        /// A .safetensors checkpoint.
        model: PathBuf,
        #[command(flatten)]
        model_args: ModelArgs,
        /// Input height and width for the tap shapes (default: the model's own size).
        #[arg(long)]
        size: Option<usize>,
    },
    /// Write the activations of chosen taps to DIR/<tap>.npy ([N, P, C] float32) and the
    /// logits to DIR/logits.npy, streaming batch by batch.
    Extract {
        /// A .safetensors checkpoint.
        #[arg(long)]
        model: PathBuf,
        /// A folder of images (optionally one sub-folder per class), or a float32 [N,3,H,W] .npy
        /// taken as already preprocessed.
        #[arg(long)]
        input: PathBuf,
        /// Tap names or globs, comma-separated (default: every tap).
        #[arg(long, value_delimiter = ',')]
        taps: Vec<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Stop at the first unreadable image instead of skipping it with a warning.
        #[arg(long)]
        strict: bool,
        /// Extract only part INDEX of COUNT contiguous parts of the image list (0-based); the
        /// parts' files concatenate, in index order, to those of the whole list.
        #[arg(long, value_name = "INDEX/COUNT")]
        shard: Option<String>,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// All statistics in one streaming pass: firing rates, histograms, moments, Hoyer sparsity,
    /// pooled features, RDMs and decorrelation, written to OUT (see the README for every file).
    /// With no --model it runs on both bundled models and the bundled photos.
    Run {
        /// A .safetensors checkpoint (default: the bundled EfficientNet-Lite0 and DINOv2 ViT-S/14,
        /// each into OUT/<name>).
        #[arg(long)]
        model: Option<PathBuf>,
        /// A folder of images (class labels from sub-folders) or a float32 [N,3,H,W] .npy.
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/models/images"))]
        input: PathBuf,
        /// Output folder.
        #[arg(long, default_value = "sparsescope-out")]
        out: PathBuf,
        /// Tap names or globs, comma-separated (default: every tap).
        #[arg(long, value_delimiter = ',')]
        taps: Vec<String>,
        /// When an entry counts as active: gt:T (x > T) or absgt:T (|x| > T).
        #[arg(long, default_value = "gt:0")]
        active: String,
        /// Linear histogram range LO,HI.
        #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [-16.0, 16.0])]
        hist_range: Vec<f64>,
        /// Linear histogram bins.
        #[arg(long, default_value_t = 256)]
        hist_bins: usize,
        /// RDM measures, comma-separated: correlation, cosine, euclidean.
        #[arg(long, value_delimiter = ',', default_value = "correlation")]
        rdm: Vec<String>,
        /// MiB of GPU memory the flat-feature RDM stores of all taps may use; taps beyond it get a
        /// seeded random sketch whose expected error the summary states.
        #[arg(long, default_value_t = 1024)]
        rdm_budget: u64,
        /// Dimension of the flat-feature sketch (a multiple of 32).
        #[arg(long, default_value_t = sparsescope::rdm::DEFAULT_SKETCH_DIM)]
        sketch_dim: usize,
        /// Seed of the sketch.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Stop at the first unreadable image instead of skipping it with a warning.
        #[arg(long)]
        strict: bool,
        /// Process only part INDEX of COUNT contiguous parts of the image list (0-based, e.g.
        /// 2/8), keeping what `sparsescope merge` needs to combine the parts into one run.
        #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "resume")]
        shard: Option<String>,
        /// Finish a run that was interrupted (Ctrl-C): the images done are kept in
        /// OUT/.resume; the rest are processed and everything is merged into OUT. Give the
        /// same model, input and flags as the interrupted command.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// Throughput on this adapter: forward only and forward plus every default statistic, and
    /// the GPU time of each kernel (timestamp queries where the adapter has them).
    Bench {
        /// A .safetensors checkpoint (default: the bundled EfficientNet-Lite0).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/models/efficientnet_lite0.safetensors"))]
        model: PathBuf,
        /// Images per batch.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Timed batches of each kind (after one warm-up batch).
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// Also print every dispatch of the profiled batch in plan order, layer by layer (the
        /// JSON always holds them, as `dispatches`).
        #[arg(long)]
        each: bool,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// Representational similarity between the taps of a run: the layer-by-layer RSA matrix;
    /// with OUT2 (another run on the same images) the cross matrix; with --target each tap
    /// against an external RDM, with permutation p-values. Writes OUT/rsa/.
    Rsa {
        /// The OUT folder of `sparsescope run`.
        out: PathBuf,
        /// A second run on the same images (e.g. another model): the cross matrix [T1, T2].
        #[arg(conflicts_with = "target")]
        out2: Option<PathBuf>,
        /// An external RDM, N x N in the order of OUT/images.txt: .npy (float64/32) or .csv
        /// (comma, tab, semicolon or space separated; an optional header row and/or first
        /// column of image names puts it in the run's order).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Image names (one per line) in the order of the target's rows, for a target that does
        /// not name them; matched by path, file name or stem.
        #[arg(long, requires = "target")]
        target_images: Option<PathBuf>,
        /// RDMs of pooled ([N, C]) or flat ([N, P*C]) features.
        #[arg(long, default_value = "pooled")]
        features: String,
        /// RDM measure: correlation, cosine or euclidean (pooled RDMs of a measure the run did not
        /// write are computed from pooled.npy; flat ones need the run's file).
        #[arg(long, default_value = "correlation")]
        measure: String,
        /// spearman (average ranks for ties), pearson or kendall (tau-a).
        #[arg(long, default_value = "spearman")]
        method: String,
        /// Tap names or globs, comma-separated (default: every tap of the run).
        #[arg(long, value_delimiter = ',')]
        taps: Vec<String>,
        /// Permutations of the target's images for the p-values (0: none).
        #[arg(long, default_value_t = 1000)]
        permutations: usize,
        /// Bootstrap resamples of the images for confidence intervals against the target (0: none).
        #[arg(long, default_value_t = 0)]
        bootstrap: usize,
        /// Confidence level of the bootstrap intervals.
        #[arg(long, default_value_t = 0.95)]
        level: f64,
        /// Seed of the permutations and resamples.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Pruning of rarely-firing channels: per tap, channels ranked ascending (by firing rate,
    /// std or entropy); for 0..90% dropped, RSA(kept, full) of pooled and flat features, a seeded
    /// random-drop baseline, and the variance of the full pooled features the dropped channels
    /// explain (ridge, leave-one-out R^2). Flat curves rerun the model on the GPU. Writes
    /// OUT/prune/.
    Prune {
        /// The OUT folder of `sparsescope run`.
        out: PathBuf,
        /// Tap names or globs, comma-separated (default: every tap of the run).
        #[arg(long, value_delimiter = ',')]
        taps: Vec<String>,
        /// Channel ranking: firing (firing_rate), std (of the pooled activation over images) or
        /// entropy (binary entropy of firing_rate).
        #[arg(long, default_value = "firing")]
        rank: String,
        /// Seed of the random-drop baseline (and of sketches).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// RDM measure: correlation, cosine or euclidean.
        #[arg(long, default_value = "correlation")]
        measure: String,
        /// RSA method: spearman, pearson or kendall (tau-a).
        #[arg(long, default_value = "spearman")]
        method: String,
        /// Random drop orders of the baseline.
        #[arg(long, default_value_t = 5)]
        random_repeats: usize,
        /// RSA(kept, full) a level must reach to count as prunable.
        #[arg(long, default_value_t = 0.95)]
        threshold: f64,
        /// Pooled curves only: no second pass on the GPU.
        #[arg(long)]
        no_flat: bool,
        /// Require the per-class silent channels (an error when the run has no class labels).
        #[arg(long, conflicts_with = "no_classes")]
        by_class: bool,
        /// Leave out the per-class silent channels.
        #[arg(long)]
        no_classes: bool,
        /// The run's checkpoint, when its recorded path does not resolve from here.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Images per GPU batch (default: the run's).
        #[arg(long)]
        batch: Option<usize>,
        /// MiB of GPU memory for the channel groups' flat Grams of one pass (default: the run's
        /// --rdm-budget); taps beyond it are sketched, taps that do not fit together take
        /// several passes.
        #[arg(long)]
        rdm_budget: Option<u64>,
        /// Sketch dimension for taps beyond the budget (default: the run's).
        #[arg(long)]
        sketch_dim: Option<usize>,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// The sparse null code: per token of each tap, Hoyer sparsity and the cosine to the tap's
    /// dominant binary pattern (channels firing on more than half the entries), from a second
    /// GPU pass over the run's images; per tap the share of null tokens and its spread; per kind
    /// of tap the depth where it emerges. Writes taps/<tap>/hoyer.npy, nullcode_cos.npy and
    /// OUT/nullcode.json.
    Nullcode {
        /// The OUT folder of `sparsescope run`.
        out: PathBuf,
        /// Tap names or globs, comma-separated (default: every tap of the run).
        #[arg(long, value_delimiter = ',')]
        taps: Vec<String>,
        /// A null token's least cosine to the dominant pattern.
        #[arg(long, default_value_t = sparsescope::analysis::nullcode::DEFAULT_COS_MIN)]
        cos_min: f64,
        /// A null token's least Hoyer sparsity.
        #[arg(long, default_value_t = sparsescope::analysis::nullcode::DEFAULT_HOYER_MIN)]
        hoyer_min: f64,
        /// The run's checkpoint, when its recorded path does not resolve from here.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Images per GPU batch (default: the run's).
        #[arg(long)]
        batch: Option<usize>,
        #[command(flatten)]
        model_args: ModelArgs,
    },
    /// PNG figures and one self-contained OUT/report/index.html from a run and what `rsa`,
    /// `prune` and `nullcode` added to it: histograms of positive values, % active and
    /// decorrelation by depth, firing-rate distributions, RDM heatmaps, the RSA matrix, pruning
    /// curves, null-code share by depth and maps over the photos.
    Report {
        /// The OUT folder of `sparsescope run`.
        out: PathBuf,
    },
    /// Combine the runs of `run --shard i/n` into the run over the whole image list: counts and
    /// histograms exactly, RDMs rebuilt from every shard's pooled features and flat rows.
    Merge {
        /// The shard folders (any order; each index once).
        shards: Vec<PathBuf>,
        /// Where the merged run goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the top-5 ImageNet classes of a classifier for each image.
    Predict {
        /// A .safetensors checkpoint with a classifier head.
        #[arg(long)]
        model: PathBuf,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many classes to print per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[command(flatten)]
        model_args: ModelArgs,
    },
}

fn open_gpu(args: &GpuArgs) -> Result<Gpu> {
    Ok(Gpu::new(&GpuOptions {
        backend: args.backend.clone(),
        adapter: args.adapter.clone(),
        ..Default::default()
    })?)
}

/// Open the images (or .npy) at `input` in batches of `batch`, or of the largest smaller batch
/// whose forward pass fits the adapter's limits (said on stderr); returns the batch used.
/// `run --resume`: the parts an interrupted run kept in OUT/.resume, the rest of the list run as
/// the next part, all merged into OUT (then OUT/.resume is removed). Interrupted again, the new
/// part is kept too and `--resume` goes on from there.
fn resume_run(
    gpu: &Gpu,
    net: &dyn model::Network,
    model_path: &std::path::Path,
    input: &std::path::Path,
    out: &std::path::Path,
    options: &RunOptions,
) -> Result<sparsescope::merge::MergeReport> {
    let dir = sparsescope::run::resume_dir(out);
    let mut parts: Vec<(usize, PathBuf)> = std::fs::read_dir(&dir)
        .with_context(|| {
            format!(
                "{}: nothing to resume (no interrupted run there)",
                out.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let k = p
                .file_name()?
                .to_str()?
                .strip_prefix("part-")?
                .parse()
                .ok()?;
            p.join("summary.json").exists().then_some((k, p))
        })
        .collect();
    parts.sort();
    let Some((last, last_dir)) = parts.last().cloned() else {
        anyhow::bail!("{}: nothing to resume (no finished part)", dir.display());
    };
    let meta_path = last_dir.join("shard.json");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path)
            .with_context(|| format!("{}: cannot read", meta_path.display()))?,
    )?;
    let done = meta["first_image"].as_u64().unwrap_or(0) as usize
        + meta["listed_images"].as_u64().unwrap_or(0) as usize;
    let total = std::cell::Cell::new(0);
    let source = BatchSource::open_part(input, &net.preprocess(), options.batch, threads(), |n| {
        total.set(n);
        done.min(n)..n
    })?;
    let mut folders: Vec<PathBuf> = parts.iter().map(|(_, p)| p.clone()).collect();
    if done < total.get() {
        let next = dir.join(format!("part-{}", last + 1));
        let options = RunOptions {
            shard: Some(Shard {
                index: last + 1,
                count: last + 2,
                total: total.get(),
            }),
            part_start: Some(done),
            ..options.clone()
        };
        sparsescope::run::run(
            gpu,
            net,
            model_path,
            input,
            source,
            &next,
            &options,
            &mut |_| {},
        )?;
        folders.push(next);
    }
    let r = sparsescope::merge::merge_in_order(gpu, &folders, out, &mut |_| {})?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("{}: cannot remove", dir.display()))?;
    Ok(r)
}

/// With `shard` (index, count), only that part of the list is opened; the `Shard` returned
/// records it with the whole list's length.
fn open_fitted(
    gpu: &Gpu,
    net: &dyn model::Network,
    input: &std::path::Path,
    batch: usize,
    shard: Option<(usize, usize)>,
) -> Result<(BatchSource, usize, Option<Shard>)> {
    let total = std::cell::Cell::new(0);
    let open = |batch| {
        BatchSource::open_part(input, &net.preprocess(), batch, threads(), |n| {
            total.set(n);
            match shard {
                Some((i, count)) => Shard::range(i, count, n),
                None => 0..n,
            }
        })
    };
    let source = open(batch)?;
    let [_, h, w] = source.image_shape();
    let fitted = model::fit_batch(gpu, net, batch, (h, w), &mut |m| eprintln!("warning: {m}"))?;
    let source = if fitted == batch {
        source
    } else {
        open(fitted)?
    };
    let part = shard.map(|(index, count)| Shard {
        index,
        count,
        total: total.get(),
    });
    Ok((source, fitted, part))
}

/// `bench --each`: every dispatch of the profiled batch, in plan order.
fn print_dispatches(dispatches: &[sparsescope::gpu::KernelProfile], w: usize) {
    println!(
        "  {:>5} {:w$} {:>10} {:>9} {:>10} {:>9} {:>8}",
        "#", "kernel", "ms", "GFLOP/s", "MFLOP", "MB bound", "copy ms"
    );
    for (i, d) in dispatches.iter().enumerate() {
        let t = d.seconds.max(f64::MIN_POSITIVE);
        println!(
            "  {:>5} {:w$} {:>10.3} {:>9.1} {:>10.1} {:>9.1} {:>8.3}",
            i,
            d.kernel,
            1e3 * d.seconds,
            d.flops as f64 / t / 1e9,
            d.flops as f64 / 1e6,
            d.bytes as f64 / 1e6,
            1e3 * d.copy_seconds
        );
    }
}

fn model_options(args: &ModelArgs) -> ModelOptions {
    ModelOptions {
        arch: args.arch.clone(),
        heads: args.heads,
        f16_weights: args.f16_weights,
    }
}

fn progress_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}")
            .expect("static template"),
    );
    bar
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Inspect {
            model: path,
            model_args,
            size,
        } => {
            let gpu = open_gpu(&cli.gpu)?;
            let net = model::load(&gpu, path, &model_options(model_args))?;
            let weight_bytes = gpu.uploaded_bytes();
            let side = size.unwrap_or(net.preprocess().crop_size as usize);
            let taps = net.taps(side, side)?;
            if cli.json {
                let value = serde_json::json!({
                    "model": path,
                    "arch": net.arch(),
                    "description": net.describe(),
                    "parameters": net.parameters(),
                    "weight_bytes": weight_bytes,
                    "f16_weights": net.f16_weights(),
                    "input": [3, side, side],
                    "adapter": gpu.summary(),
                    "taps": taps,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{}", path.display());
                println!("  {}", net.describe());
                println!(
                    "  {:.2} M parameters, {:.1} MB on the GPU ({}); input 3x{side}x{side}",
                    net.parameters() as f64 / 1e6,
                    weight_bytes as f64 / 1e6,
                    if net.f16_weights() {
                        "f16 weight matrices and kernels"
                    } else {
                        "f32"
                    }
                );
                println!("  adapter: {} ({:?})", gpu.info.name, gpu.info.device_type);
                println!("  {} taps, [P positions, C channels]:", taps.len());
                let width = taps.iter().map(|t| t.name.len()).max().unwrap_or(0);
                for t in &taps {
                    println!("    {:width$}  [{}, {}]", t.name, t.positions, t.channels);
                }
            }
        }
        Command::Extract {
            model: path,
            input,
            taps,
            out,
            batch,
            strict,
            shard,
            model_args,
        } => {
            let shard = shard.as_deref().map(Shard::parse).transpose()?;
            let gpu = open_gpu(&cli.gpu)?;
            let net = model::load(&gpu, path, &model_options(model_args))?;
            let (source, batch, part) = open_fitted(&gpu, net.as_ref(), input, *batch, shard)?;
            let bar = progress_bar(source.len(), cli.quiet || cli.json);
            let options = ExtractOptions {
                taps: taps.clone(),
                batch,
                strict: *strict,
            };
            let report = extract(&gpu, net.as_ref(), source, out, &options, &mut |done| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            for (path, why) in &report.skipped {
                eprintln!("warning: skipped {}: {why}", path.display());
            }
            if let Some(p) = part {
                // Which rows of the whole list these files hold.
                let range = Shard::range(p.index, p.count, p.total);
                let text = serde_json::to_string_pretty(&serde_json::json!({
                    "shard": p, "first_image": range.start, "images": report.images,
                }))?;
                std::fs::write(out.join("shard.json"), text).with_context(|| {
                    format!("{}: cannot write", out.join("shard.json").display())
                })?;
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !cli.quiet {
                println!(
                    "{} images, {} taps written to {}",
                    report.images,
                    report.files.len(),
                    out.display()
                );
            }
        }
        Command::Run {
            model: path,
            input,
            out,
            taps,
            active,
            hist_range,
            hist_bins,
            rdm,
            rdm_budget,
            sketch_dim,
            seed,
            batch,
            strict,
            shard,
            resume,
            model_args,
        } => {
            let shard = shard.as_deref().map(Shard::parse).transpose()?;
            // Ctrl-C stops after the batch in flight and keeps the work done (run.rs).
            ctrlc::set_handler(|| {
                sparsescope::run::INTERRUPT.store(true, std::sync::atomic::Ordering::SeqCst)
            })
            .context("cannot install the Ctrl-C handler")?;
            let gpu = open_gpu(&cli.gpu)?;
            let mut stats = StatsConfig {
                predicate: active.parse()?,
                ..Default::default()
            };
            stats.hist.lo = hist_range[0];
            stats.hist.hi = hist_range[1];
            stats.hist.bins = *hist_bins;
            let options = RunOptions {
                taps: taps.clone(),
                batch: *batch,
                stats,
                measures: rdm
                    .iter()
                    .map(|m| Measure::parse(m))
                    .collect::<Result<_, _>>()?,
                rdm_budget: rdm_budget * (1 << 20),
                sketch_dim: *sketch_dim,
                seed: *seed,
                strict: *strict,
                shard: None,
                part_start: None,
            };
            let bundled = [
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/models/efficientnet_lite0.safetensors"
                ),
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/models/dinov2_vits14.safetensors"
                ),
            ];
            let jobs: Vec<(PathBuf, PathBuf)> = match path {
                Some(p) => vec![(p.clone(), out.clone())],
                None => bundled
                    .iter()
                    .map(|p| {
                        let p = PathBuf::from(p);
                        let stem = p.file_stem().unwrap_or_default().to_os_string();
                        (p, out.join(stem))
                    })
                    .collect(),
            };
            let mut reports = Vec::new();
            for (model_path, out_dir) in jobs {
                let net = model::load(&gpu, &model_path, &model_options(model_args))?;
                if *resume {
                    let r = resume_run(&gpu, net.as_ref(), &model_path, input, &out_dir, &options)?;
                    if !cli.quiet {
                        println!(
                            "resumed and merged {} parts: {} images -> {}",
                            r.shards,
                            r.images,
                            r.summary.display()
                        );
                    }
                    continue;
                }
                let (source, fitted, part) = open_fitted(&gpu, net.as_ref(), input, *batch, shard)?;
                let options = RunOptions {
                    batch: fitted,
                    shard: part,
                    ..options.clone()
                };
                let bar = progress_bar(source.len(), cli.quiet || cli.json);
                let report = sparsescope::run::run(
                    &gpu,
                    net.as_ref(),
                    &model_path,
                    input,
                    source,
                    &out_dir,
                    &options,
                    &mut |done| bar.set_position(done as u64),
                )?;
                bar.finish_and_clear();
                for (p, why) in &report.skipped {
                    eprintln!("warning: skipped {}: {why}", p.display());
                }
                if !cli.quiet && !cli.json {
                    print_table(&model_path, &report);
                }
                reports.push(report);
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
        }
        Command::Bench {
            model: path,
            batch,
            iters,
            each,
            model_args,
        } => {
            let gpu = open_gpu(&cli.gpu)?;
            let net = model::load(&gpu, path, &model_options(model_args))?;
            let r = sparsescope::bench::bench(&gpu, net.as_ref(), *batch, *iters)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "adapter: {} ({}, {})",
                    r.adapter.name, r.adapter.device_type, r.adapter.backend
                );
                println!("kernels: {}", r.kernel_choices);
                println!(
                    "model: {}{}; batch {}, input {:?}",
                    r.model,
                    if r.f16_weights { ", f16 weights" } else { "" },
                    r.batch,
                    r.input
                );
                println!(
                    "forward only:         {:8.3} images/s  ({:.1} GFLOP/s)",
                    r.forward_images_per_s, r.forward_gflops
                );
                let rounds = &r.stats_cost_ratios;
                let (lo, hi) = rounds
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                let spread = if rounds.len() > 1 {
                    format!("; median of {} rounds, {lo:.2}-{hi:.2}", rounds.len())
                } else {
                    String::new()
                };
                println!(
                    "forward + statistics: {:8.3} images/s  (statistics cost {:.2}x the forward pass{spread})",
                    r.stats_images_per_s, r.stats_cost_ratio
                );
                println!(
                    "flat RDMs of {} images: {:.3} s after the pass (grows as N^2)",
                    r.finalise_images, r.finalise_seconds
                );
                if r.kernels.is_empty() {
                    println!("(no per-kernel times: the adapter has no timestamp queries)");
                } else {
                    // As wide as the longest kernel name (at least 24), so columns line up.
                    let w = r
                        .kernels
                        .iter()
                        .map(|k| k.kernel.len())
                        .fold(24, usize::max);
                    let kernels: f64 = r.kernels.iter().map(|k| k.seconds).sum();
                    let copies: f64 = r.kernels.iter().map(|k| k.copy_seconds).sum();
                    println!(
                        "GPU time per batch: {:.1} ms in kernels, {:.1} ms in the copies before them",
                        1e3 * kernels,
                        1e3 * copies
                    );
                    println!(
                        "  {:w$} {:>6} {:>10} {:>7} {:>9} {:>8} {:>8}",
                        "kernel", "calls", "ms/batch", "share", "GFLOP/s", "GB/s", "copy ms"
                    );
                    for k in &r.kernels {
                        println!(
                            "  {:w$} {:>6} {:>10.2} {:>6.1}% {:>9.1} {:>8.1} {:>8.2}",
                            k.kernel,
                            k.dispatches,
                            1e3 * k.seconds,
                            100.0 * k.share,
                            k.gflops,
                            k.gbytes_per_s,
                            1e3 * k.copy_seconds
                        );
                    }
                    if *each {
                        print_dispatches(&r.dispatches, w);
                    }
                }
            }
        }
        Command::Rsa {
            out,
            out2,
            target,
            target_images,
            features,
            measure,
            method,
            taps,
            permutations,
            bootstrap,
            level,
            seed,
        } => {
            use sparsescope::analysis::rsa_report::{
                Comparison, Features, RsaOptions, rsa_command,
            };
            let options = RsaOptions {
                features: Features::parse(features)?,
                measure: Measure::parse(measure)?,
                method: sparsescope::analysis::rsa::Method::parse(method)?,
                taps: taps.clone(),
                permutations: *permutations,
                bootstrap: *bootstrap,
                level: *level,
                seed: *seed,
                target_images: target_images.clone(),
            };
            let comparison = match (out2, target) {
                (Some(o), _) => Comparison::Cross(o.clone()),
                (None, Some(t)) => Comparison::Target(t.clone()),
                (None, None) => Comparison::Within,
            };
            let report = rsa_command(out, &comparison, &options)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !cli.quiet {
                print!("{}", report.table());
            }
        }
        Command::Prune {
            out,
            taps,
            rank,
            seed,
            measure,
            method,
            random_repeats,
            threshold,
            no_flat,
            by_class,
            no_classes,
            model: model_path,
            batch,
            rdm_budget,
            sketch_dim,
            model_args,
        } => {
            use sparsescope::analysis::prune::{ClassOutput, PruneOptions, Rank, prune_command};
            let options = PruneOptions {
                taps: taps.clone(),
                rank: Rank::parse(rank)?,
                seed: *seed,
                measure: Measure::parse(measure)?,
                method: sparsescope::analysis::rsa::Method::parse(method)?,
                random_repeats: *random_repeats,
                flat: !*no_flat,
                classes: if *by_class {
                    ClassOutput::Required
                } else if *no_classes {
                    ClassOutput::Off
                } else {
                    ClassOutput::IfLabelled
                },
                threshold: *threshold,
                rdm_budget: rdm_budget.map(|m| m * (1 << 20)),
                sketch_dim: *sketch_dim,
                batch: *batch,
                model: model_path.clone(),
                model_options: model_options(model_args),
                gpu: GpuOptions {
                    backend: cli.gpu.backend.clone(),
                    adapter: cli.gpu.adapter.clone(),
                    ..Default::default()
                },
                threads: threads(),
            };
            let quiet = cli.quiet || cli.json;
            let bar = if quiet || *no_flat {
                ProgressBar::hidden()
            } else {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template("second pass {msg}: {pos} images  {per_sec}")
                        .expect("static template"),
                );
                b
            };
            let report = prune_command(out, &options, &mut |done, pass| {
                bar.set_message(format!("{}", pass + 1));
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            for (tap, e) in &report.failed {
                eprintln!("warning: tap '{tap}' not analysed: {e}");
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !cli.quiet {
                print!("{}", report.table());
            }
        }
        Command::Nullcode {
            out,
            taps,
            cos_min,
            hoyer_min,
            model: model_path,
            batch,
            model_args,
        } => {
            use sparsescope::analysis::nullcode::{NullcodeOptions, nullcode_command};
            let run = sparsescope::outdir::RunDir::open(out)?;
            let options = NullcodeOptions {
                taps: taps.clone(),
                cos_min: *cos_min,
                hoyer_min: *hoyer_min,
                batch: batch.unwrap_or(run.batch()),
                model: model_path.clone(),
                model_options: model_options(model_args),
                gpu: GpuOptions {
                    backend: cli.gpu.backend.clone(),
                    adapter: cli.gpu.adapter.clone(),
                    ..Default::default()
                },
                threads: threads(),
            };
            let bar = progress_bar(run.n_images(), cli.quiet || cli.json);
            let report =
                nullcode_command(out, &options, &mut |done| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if !cli.quiet {
                print!("{}", report.table());
            }
        }
        Command::Report { out } => {
            let r = sparsescope::report::report_command(out)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if !cli.quiet {
                for f in &r.figures {
                    println!("  -> {}", f.display());
                }
                for m in &r.missing {
                    println!("  (not included: {m})");
                }
                println!("report: {}", r.index.display());
            }
        }
        Command::Merge { shards, out } => {
            let gpu = open_gpu(&cli.gpu)?;
            let r = sparsescope::merge::merge(&gpu, shards, out, &mut |_| {})?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else if !cli.quiet {
                println!(
                    "merged {} shards: {} images, {} taps -> {}",
                    r.shards,
                    r.images,
                    r.taps,
                    r.summary.display()
                );
            }
        }
        Command::Predict {
            model: path,
            images,
            top,
            model_args,
        } => {
            let gpu = open_gpu(&cli.gpu)?;
            let net = model::load(&gpu, path, &model_options(model_args))?;
            let predictions = predict(&gpu, net.as_ref(), images, *top)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&predictions)?);
            } else {
                for p in &predictions {
                    println!("{}", p.image.display());
                    for (index, name, prob) in &p.top {
                        println!("  {:6.2}%  {name} ({index})", 100.0 * prob);
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_table(model: &std::path::Path, report: &RunReport) {
    println!(
        "{}: {} images -> {}",
        model.display(),
        report.images,
        report.summary.display()
    );
    let width = report
        .rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(3)
        .max(3);
    println!(
        "  {:width$}  {:>8}  {:>9}  {:>13}  {:>6}  {:>8}",
        "tap", "% active", "mean rate", "dead channels", "Hoyer", "decorr."
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for r in &report.rows {
        println!(
            "  {:width$}  {:>8.2}  {:>9.3}  {:>6} / {:<5}  {:>6}  {:>8}",
            r.name,
            100.0 * r.frac_active,
            r.mean_firing_rate,
            r.dead_channels,
            r.channels,
            opt(r.hoyer_mean),
            opt(r.decorrelation)
        );
    }
}

/// Decoding threads: all cores but one, which feeds the GPU.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .saturating_sub(1)
        .max(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
