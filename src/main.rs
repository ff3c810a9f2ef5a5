//! The command line: parse, call the library, print. Errors print as one line and exit 1.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use sparsescope::data::BatchSource;
use sparsescope::extract::{ExtractOptions, extract};
use sparsescope::gpu::{Gpu, GpuOptions};
use sparsescope::model::{self, ModelOptions};
use sparsescope::predict::predict;

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
        #[command(flatten)]
        model_args: ModelArgs,
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
    })?)
}

fn model_options(args: &ModelArgs) -> ModelOptions {
    ModelOptions {
        arch: args.arch.clone(),
        heads: args.heads,
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
            let side = size.unwrap_or(net.preprocess().crop_size as usize);
            let taps = net.taps(side, side)?;
            if cli.json {
                let value = serde_json::json!({
                    "model": path,
                    "arch": net.arch(),
                    "description": net.describe(),
                    "parameters": net.parameters(),
                    "input": [3, side, side],
                    "adapter": gpu.summary(),
                    "taps": taps,
                });
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{}", path.display());
                println!("  {}", net.describe());
                println!(
                    "  {:.2} M parameters; input 3x{side}x{side}",
                    net.parameters() as f64 / 1e6
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
            model_args,
        } => {
            let gpu = open_gpu(&cli.gpu)?;
            let net = model::load(&gpu, path, &model_options(model_args))?;
            let source = BatchSource::open(input, &net.preprocess(), *batch, threads())?;
            let bar = progress_bar(source.len(), cli.quiet || cli.json);
            let options = ExtractOptions {
                taps: taps.clone(),
                batch: *batch,
                strict: *strict,
            };
            let report = extract(&gpu, net.as_ref(), source, out, &options, &mut |done| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            for (path, why) in &report.skipped {
                eprintln!("warning: skipped {}: {why}", path.display());
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
