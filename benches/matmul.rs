//! GFLOP/s of every matmul variant on the adapter at hand, beside numpy's sgemm (OpenBLAS or
//! whatever BLAS numpy links) measured in the same run, on ViT-B/16's shapes at batch 8:
//! M = 1576 tokens (197 x 8), K = 768, N = 768 (attention projection) and N = 3072 (MLP fc1).
//!
//! Each variant is validated once before timing: on a small odd shape against the f64 CPU
//! reference, and on sampled entries of the timed shape. A timed iteration submits one plan of
//! `reps` identical dispatches (`reps` chosen so that an iteration takes about 0.25 s) and waits
//! for the queue, so submission and wait overheads are amortised but included. A variant whose
//! single dispatch takes over `SLOW_S` is timed by a plain loop instead (criterion's 10-sample
//! minimum would take minutes). GFLOP/s in the summary = all timed flops / all timed seconds.
//!
//! Run: cargo bench --bench matmul
//! SPARSESCOPE_PYTHON names the Python with numpy (default python3); without numpy the
//! comparison is skipped with a note. SPARSESCOPE_MATMUL_VARIANTS=subgroup,tiled (substrings of
//! kernel names, or "f16") limits the variants run. Each kernel runs twice where the adapter has
//! SHADER_F16: with B stored as f32 and as f16 (`--f16-weights`), validated against the
//! reference on the f16-rounded B.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use sparsescope::gpu::ops::{self, Act, Epilogue, MatmulVariant};
use sparsescope::gpu::{Gpu, GpuOptions, Plan, Tensor};

const M: usize = 1576;
const K: usize = 768;
const NS: [usize; 2] = [768, 3072];
/// A dispatch slower than this is timed by a plain loop of `SLOW_RUNS` instead of criterion.
const SLOW_S: f64 = 0.5;
const SLOW_RUNS: usize = 2;

/// xorshift64: reproducible inputs without a random-number crate.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn reference_entry(a: &[f32], b: &[f32], k: usize, n: usize, i: usize, j: usize) -> f64 {
    (0..k)
        .map(|kk| a[i * k + kk] as f64 * b[kk * n + j] as f64)
        .sum()
}

fn assert_near(what: &str, got: f32, want: f64, k: usize) {
    let allowed = 1e-5 * (k as f64).sqrt() + 1e-5 * want.abs();
    assert!(
        (got as f64 - want).abs() <= allowed,
        "{what}: expected {want}, got {got} (allowed {allowed:.2e}); not timing a wrong kernel"
    );
}

/// The small check: an odd shape (not multiples of 8, 32 or 64) with bias and GELU, every entry.
fn validate_small(gpu: &Gpu, variant: MatmulVariant) {
    let (m, k, n) = (37, 70, 68);
    let a = random(m * k, 1);
    let b = random(k * n, 2);
    let bias = random(n, 3);
    let ta = gpu.upload("a", &[m, k], &a).unwrap();
    let tb = gpu.upload("b", &[k, n], &b).unwrap();
    let tbias = gpu.upload("bias", &[n], &bias).unwrap();
    let out = gpu.zeros("out", &[m, n]).unwrap();
    let epi = Epilogue {
        bias: Some(&tbias),
        act: Act::Gelu,
        ..Default::default()
    };
    let mut plan = Plan::default();
    plan.push(ops::matmul_with(gpu, variant, &ta, k, &tb, &out, m, epi).unwrap());
    plan.run(gpu).unwrap();
    let got: Vec<f32> = gpu.read(&out).unwrap();
    for i in 0..m {
        for j in 0..n {
            let v = (reference_entry(&a, &b, k, n, i, j) as f32 + bias[j]) as f64;
            let want = Act::Gelu.apply(v as f32) as f64;
            assert_near(
                &format!("{variant:?} {m}x{k}x{n} [{i}, {j}]"),
                got[i * n + j],
                want,
                k,
            );
        }
    }
}

/// A kernel and how B is stored: f32, or f16 as `--f16-weights` stores weights.
#[derive(Debug, Clone, Copy)]
struct Kind {
    variant: MatmulVariant,
    f16_b: bool,
}

impl Kind {
    fn name(self) -> String {
        format!(
            "{}{}",
            self.variant.kernel(),
            if self.f16_b { " f16 B" } else { "" }
        )
    }
}

struct Case {
    a: Vec<f32>,
    /// B, and B rounded to f16 (what the f16 kernels read).
    b: Vec<f32>,
    b16: Vec<f32>,
    ta: Tensor,
    tb: Tensor,
    /// B stored as f16, where the adapter has SHADER_F16.
    tb16: Option<Tensor>,
    out: Tensor,
    n: usize,
}

impl Case {
    fn new(gpu: &Gpu, n: usize) -> Case {
        let a = random(M * K, 10 + n as u64);
        let b = random(K * n, 20 + n as u64);
        let tb16 = gpu
            .features
            .contains(wgpu::Features::SHADER_F16)
            .then(|| gpu.upload_f16("b f16", &[K, n], &b).unwrap());
        Case {
            ta: gpu.upload("a", &[M, K], &a).unwrap(),
            tb: gpu.upload("b", &[K, n], &b).unwrap(),
            tb16,
            out: gpu.zeros("out", &[M, n]).unwrap(),
            a,
            b16: b.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
            b,
            n,
        }
    }

    fn plan(&self, gpu: &Gpu, kind: Kind, reps: usize) -> Plan {
        let b = if kind.f16_b {
            self.tb16
                .as_ref()
                .expect("f16 kinds only where SHADER_F16 is")
        } else {
            &self.tb
        };
        let mut plan = Plan::default();
        for _ in 0..reps {
            plan.push(
                ops::matmul_with(
                    gpu,
                    kind.variant,
                    &self.ta,
                    K,
                    b,
                    &self.out,
                    M,
                    Epilogue::default(),
                )
                .unwrap(),
            );
        }
        plan
    }

    /// Sampled entries of the timed shape (the pipeline is warm after this, too); returns the
    /// seconds of that one (first) dispatch.
    fn validate(&self, gpu: &Gpu, kind: Kind) -> f64 {
        let plan = self.plan(gpu, kind, 1);
        plan.run(gpu).unwrap(); // compiles the pipeline (LLVM JIT on lavapipe)
        let start = Instant::now();
        plan.run(gpu).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        let got: Vec<f32> = gpu.read(&self.out).unwrap();
        let mut s = 0x2545F4914F6CDD1Du64;
        for _ in 0..256 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let (i, j) = ((s >> 32) as usize % M, (s & 0xffff_ffff) as usize % self.n);
            let b = if kind.f16_b { &self.b16 } else { &self.b };
            let want = reference_entry(&self.a, b, K, self.n, i, j);
            assert_near(
                &format!("{} {M}x{K}x{} [{i}, {j}]", kind.name(), self.n),
                got[i * self.n + j],
                want,
                K,
            );
        }
        seconds
    }
}

/// numpy's `a @ b` GFLOP/s for each N, or why it could not be measured.
fn numpy_gflops() -> Result<(String, Vec<f64>), String> {
    let python = std::env::var("SPARSESCOPE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!(
        r#"
import time, numpy as np
rng = np.random.default_rng(0)
a = rng.random(({M}, {K}), dtype=np.float32)
out = []
for n in {NS:?}:
    b = rng.random(({K}, n), dtype=np.float32)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t0 < 1.5:
        a @ b
        reps += 1
    out.append(2.0 * {M} * {K} * n * reps / (time.perf_counter() - t0) / 1e9)
print(np.__version__, *out)
"#
    );
    let output = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{python}: {}",
            err.lines().last().unwrap_or("failed")
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    let version = words.next().unwrap_or("?").to_string();
    let values: Vec<f64> = words.filter_map(|w| w.parse().ok()).collect();
    if values.len() != NS.len() {
        return Err(format!("unexpected output from {python}: {text}"));
    }
    Ok((version, values))
}

fn main() {
    let gpu =
        Gpu::new(&GpuOptions::default()).expect("an adapter (apt-get install mesa-vulkan-drivers)");
    let adapter = format!(
        "{} ({:?}, {:?}, {} {})",
        gpu.info.name,
        gpu.info.device_type,
        gpu.info.backend,
        gpu.info.driver,
        gpu.info.driver_info
    );
    println!("adapter: {adapter}");
    let wanted = std::env::var("SPARSESCOPE_MATMUL_VARIANTS").unwrap_or_default();
    let variants: Vec<MatmulVariant> = MatmulVariant::ALL
        .into_iter()
        .filter(|v| match v.unsupported(&gpu, NS[0]) {
            None => true,
            Some(why) => {
                println!("{v:?}: not run ({why})");
                false
            }
        })
        .collect();
    for &v in &variants {
        validate_small(&gpu, v);
    }
    println!("validated on 37x70x68 (bias + GELU) against the f64 reference: {variants:?}");
    let f16 = gpu.features.contains(wgpu::Features::SHADER_F16);
    let kinds: Vec<Kind> = variants
        .iter()
        .flat_map(|&variant| [false, true].map(|f16_b| Kind { variant, f16_b }))
        .filter(|k| !k.f16_b || f16)
        .filter(|k| wanted.is_empty() || wanted.split(',').any(|w| k.name().contains(w)))
        .collect();

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    // (N, variant) -> (flops, seconds) summed over every timed iteration.
    let totals: RefCell<BTreeMap<(usize, String), (f64, f64)>> = RefCell::default();
    for n in NS {
        let case = Case::new(&gpu, n);
        let mut group = criterion.benchmark_group(format!("matmul_{M}x{K}x{n}"));
        group.sampling_mode(SamplingMode::Flat);
        for &kind in &kinds {
            let name = kind.name();
            let single = case.validate(&gpu, kind);
            if single > SLOW_S {
                // Criterion needs 10 samples at least: a plain timed loop keeps a kernel that
                // is slow on this adapter (the tiled one on lavapipe) within seconds.
                let plan = case.plan(&gpu, kind, 1);
                let start = Instant::now();
                for _ in 0..SLOW_RUNS {
                    plan.run(&gpu).unwrap();
                }
                let seconds = start.elapsed().as_secs_f64();
                println!(
                    "matmul_{M}x{K}x{n}/{name}: {:.3} s per run (plain timing of {SLOW_RUNS} runs: slower than {SLOW_S} s)",
                    seconds / SLOW_RUNS as f64
                );
                let mut t = totals.borrow_mut();
                let e = t.entry((n, name)).or_default();
                e.0 += plan.flops() as f64 * SLOW_RUNS as f64;
                e.1 += seconds;
                continue;
            }
            let reps = ((0.25 / single).round() as usize).clamp(1, 64);
            let plan = case.plan(&gpu, kind, reps);
            let flops = plan.flops() as f64;
            group.bench_function(&name, |bencher| {
                bencher.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        plan.run(&gpu).unwrap();
                    }
                    let elapsed = start.elapsed();
                    let mut t = totals.borrow_mut();
                    let e = t.entry((n, name.clone())).or_default();
                    e.0 += flops * iters as f64;
                    e.1 += elapsed.as_secs_f64();
                    elapsed
                })
            });
        }
        group.finish();
    }

    let numpy = numpy_gflops();
    println!("\nsummary, adapter {adapter}:");
    // lavapipe and numpy both use every core: other work on the machine lowers both numbers,
    // so say how busy it was (Linux only; the 1-minute figure covers most of this run).
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "  load average {} on {cores} cores (above ~{cores} means other work shared them)",
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for (i, n) in NS.into_iter().enumerate() {
        let mut best = 0.0f64;
        for ((tn, kernel), (flops, seconds)) in totals.borrow().iter() {
            if *tn == n {
                let gflops = flops / seconds / 1e9;
                best = best.max(gflops);
                println!("  M={M} K={K} N={n}: {kernel:16} {gflops:7.2} GFLOP/s");
            }
        }
        match &numpy {
            Ok((version, values)) => println!(
                "  M={M} K={K} N={n}: numpy {version:10} {:7.2} GFLOP/s (same run); best variant / numpy = {:.3}",
                values[i],
                best / values[i]
            ),
            Err(why) => println!("  numpy comparison skipped: {why}"),
        }
    }
}
