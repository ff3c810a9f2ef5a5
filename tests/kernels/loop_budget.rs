//! Every kernel whose loops grow with a shape stays within `gpu::LOOP_BUDGET` loop steps per
//! invocation (llvmpipe ends an invocation's loops silently after 65,535 in all): at the edge
//! of the budget each kernel runs and gives the exact answer, one step over it is refused with
//! a shape error naming the shape and the budget. The edges follow from each op's count of its
//! kernel's steps (`MatmulVariant::loop_steps`, `ConvVariant::loop_steps`, ...), so these
//! tests fail if a count is lower than what the kernel runs by more than the budget's margin,
//! or if a check goes missing.
//!
//! Inputs are small non-negative integers, so every sum is exact in f32 and an answer from a
//! loop cut short (a smaller sum) cannot pass for the right one.

use sparsescope::error::Error;
use sparsescope::gpu::ops::conv::{ConvSpec, ConvVariant, conv_weight_layout};
use sparsescope::gpu::ops::{self, Epilogue, LayernormVariant, MatmulVariant, pool};
use sparsescope::gpu::{Gpu, LOOP_BUDGET, Tensor};

use super::conv::run;
use super::matmul::{matmul_reference, variants};
use crate::support::{Rng, assert_close, gpu};

/// `n` integers from 0 to `levels - 1`, as f32.
fn small_ints(rng: &mut Rng, n: usize, levels: usize) -> Vec<f32> {
    (0..n).map(|_| rng.below(levels) as f32).collect()
}

/// `result` must be the loop-budget refusal of `op`, naming `what`.
fn assert_refused<T>(result: sparsescope::error::Result<T>, what: &str) {
    let Err(err) = result else {
        panic!("{what}: over the loop budget, but accepted");
    };
    assert!(matches!(err, Error::Shape { .. }), "{what}: {err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(what) && msg.contains(&format!("over the {LOOP_BUDGET}")),
        "{what}: {msg}"
    );
}

/// The largest `x` with `steps(x) <= LOOP_BUDGET`, for a nondecreasing `steps`.
fn edge(steps: impl Fn(usize) -> usize) -> usize {
    let (mut lo, mut hi) = (0, 1usize);
    while steps(hi) <= LOOP_BUDGET {
        (lo, hi) = (hi, hi * 2);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if steps(mid) <= LOOP_BUDGET {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

#[test]
fn matmul_depth_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    let (m, n) = (5, 8);
    for variant in variants(&gpu) {
        // Subgroup kernels: K = 480,000 (60,000 blocks of 8); tiled: K = 56,464.
        let k = edge(|k| variant.loop_steps(k));
        let a = small_ints(&mut rng, m * k, 3);
        let b = small_ints(&mut rng, k * n, 2);
        let ta = gpu.upload("a", &[m, k], &a).unwrap();
        let tb = gpu.upload("b", &[k, n], &b).unwrap();
        let out = gpu.zeros("out", &[m, n]).unwrap();
        gpu.write(&out, &vec![f32::NAN; m * n]);
        let epi = Epilogue::default();
        run(
            &gpu,
            ops::matmul_with(&gpu, variant, &ta, k, &tb, &out, m, epi).unwrap(),
        );
        let got: Vec<f32> = gpu.read(&out).unwrap();
        let none = ops::Act::None;
        let want = matmul_reference(&a, k, &b, m, k, n, None, None, None, none);
        assert_eq!(got, want, "{variant:?} at K = {k}");

        let over = k + 1;
        let ta = gpu.zeros("a", &[m, over]).unwrap();
        let tb = gpu.zeros("b", &[over, n]).unwrap();
        let refused = ops::matmul_with(&gpu, variant, &ta, over, &tb, &out, m, epi);
        assert_refused(refused, &format!("K = {over}"));
    }
}

/// The 1x1 convolution of one pixel with `cin` channels into 4, by `variant`, against the
/// plain sum; and one more input channel refused.
fn check_deep_conv(gpu: &Gpu, rng: &mut Rng, variant: ConvVariant, cin: usize) {
    check_1x1_conv(gpu, rng, variant, cin);
    let cout = 4;
    let out = gpu.zeros("out", &[cout]).unwrap();
    let over = ConvSpec::new(1, 1, 1, cin + 1, cout, 1, 1, 0, 1);
    let tx = gpu.zeros("x", &[cin + 1]).unwrap();
    let tw = gpu.zeros("w", &[(cin + 1) * cout]).unwrap();
    let refused = ops::conv::conv2d_with(gpu, variant, &tx, &tw, &over, &out, Epilogue::default());
    assert_refused(refused, &format!("{} input channels", cin + 1));
}

/// The 1x1 convolution of one pixel with `cin` channels into 4, by `variant`, against the
/// plain sum.
fn check_1x1_conv(gpu: &Gpu, rng: &mut Rng, variant: ConvVariant, cin: usize) {
    let cout = 4;
    let spec = ConvSpec::new(1, 1, 1, cin, cout, 1, 1, 0, 1);
    let x = small_ints(rng, cin, 3);
    // PyTorch's [Cout, Cin, 1, 1].
    let w = small_ints(rng, cout * cin, 2);
    let tx = gpu.upload("x", &[1, 1, 1, cin], &x).unwrap();
    let layout = conv_weight_layout(&w, [cout, cin, 1, 1]).unwrap();
    let tw = gpu.upload("w", &[layout.len()], &layout).unwrap();
    let out = gpu.zeros("out", &[cout]).unwrap();
    gpu.write(&out, &vec![f32::NAN; cout]);
    let d = ops::conv::conv2d_with(gpu, variant, &tx, &tw, &spec, &out, Epilogue::default());
    run(gpu, d.unwrap());
    let got: Vec<f32> = gpu.read(&out).unwrap();
    let want: Vec<f32> = (0..cout)
        .map(|co| (0..cin).map(|ci| x[ci] * w[co * cin + ci]).sum())
        .collect();
    assert_eq!(got, want, "{variant:?} over {cin} channels");
}

#[test]
fn convolution_depth_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(22);
    let mut ran = Vec::new();
    for variant in [
        ConvVariant::Tiled,
        ConvVariant::Subgroup,
        ConvVariant::Texture,
    ] {
        let probe = ConvSpec::new(1, 1, 1, 8, 4, 1, 1, 0, 1);
        if variant.unsupported(&gpu, &probe).is_some() {
            continue;
        }
        // Subgroup bodies: 479,984 channels (1 + 1 + 59,998 steps); tiled: 56,464.
        let spec = |c| ConvSpec::new(1, 1, 1, c, 4, 1, 1, 0, 1);
        let cin = edge(|c| variant.loop_steps(&spec(c)).unwrap());
        check_deep_conv(&gpu, &mut rng, variant, cin);
        ran.push(variant);
    }
    let lavapipe = gpu.is_cpu() && gpu.info.backend == wgpu::Backend::Vulkan;
    assert!(
        !lavapipe || ran.len() == 3,
        "lavapipe runs every body: {ran:?}"
    );
    // A 1x1 convolution routed to the matmul is bounded by the matmul kernel it runs, not by
    // the strictest one: 100,000 channels are over the tiled kernel's edge, within the
    // subgroup kernels' (lavapipe's choice).
    if lavapipe {
        check_1x1_conv(&gpu, &mut rng, ConvVariant::Matmul, 100_000);
    }
}

#[test]
fn depthwise_window_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(23);
    let c = 4;
    // kh (1 + kw) steps: a 244 x 244 kernel is 59,780, a 245 x 245 one 60,270.
    let square = |k| ConvSpec::new(1, k, k, c, c, k, 1, 0, c);
    let k = edge(|k| ConvVariant::Depthwise.loop_steps(&square(k)).unwrap());
    let spec = square(k);
    let x = small_ints(&mut rng, k * k * c, 3);
    // PyTorch's [C, 1, k, k].
    let w = small_ints(&mut rng, c * k * k, 2);
    let tx = gpu.upload("x", &[1, k, k, c], &x).unwrap();
    let layout = conv_weight_layout(&w, [c, 1, k, k]).unwrap();
    let tw = gpu.upload("w", &[layout.len()], &layout).unwrap();
    let out = gpu.zeros("out", &[c]).unwrap();
    let want: Vec<f32> = (0..c)
        .map(|ch| (0..k * k).map(|t| x[t * c + ch] * w[ch * k * k + t]).sum())
        .collect();
    for variant in [ConvVariant::Depthwise, ConvVariant::DepthwiseTexture] {
        gpu.write(&out, &vec![f32::NAN; c]);
        let d = ops::conv::conv2d_with(&gpu, variant, &tx, &tw, &spec, &out, Epilogue::default());
        run(&gpu, d.unwrap());
        let got: Vec<f32> = gpu.read(&out).unwrap();
        assert_eq!(got, want, "{variant:?} {k}x{k}");

        let big = k + 1;
        let over = ConvSpec::new(1, big, big, c, c, big, 1, 0, c);
        let tx = gpu.zeros("x", &[big * big * c]).unwrap();
        let tw = gpu.zeros("w", &[big * big * c]).unwrap();
        let refused =
            ops::conv::conv2d_with(&gpu, variant, &tx, &tw, &over, &out, Epilogue::default());
        assert_refused(refused, &format!("a {big}x{big} kernel"));
    }
}

#[test]
fn pooling_window_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(24);
    // k (1 + k) steps per window: 244 is within the budget, 245 over it.
    let k = edge(|k| k * (1 + k));
    let c = 4;
    let dims = [1, k, k, c];
    let x = small_ints(&mut rng, k * k * c, 5);
    let tx = gpu.upload("x", &dims, &x).unwrap();
    let out = gpu.zeros("out", &[c]).unwrap();
    let column = |ch: usize| -> Vec<f32> { (0..k * k).map(|t| x[t * c + ch]).collect() };
    let max: Vec<f32> = (0..c)
        .map(|ch| column(ch).into_iter().fold(0.0, f32::max))
        .collect();
    let mean: Vec<f32> = (0..c)
        .map(|ch| (column(ch).into_iter().map(f64::from).sum::<f64>() / (k * k) as f64) as f32)
        .collect();
    for variant in pool::MaxPoolVariant::ALL {
        gpu.write(&out, &vec![f32::NAN; c]);
        run(
            &gpu,
            pool::max_pool2d_with(&gpu, variant, &tx, dims, k, 1, 0, &out).unwrap(),
        );
        let got: Vec<f32> = gpu.read(&out).unwrap();
        assert_eq!(got, max, "max pool {variant:?} {k}x{k}");
    }
    gpu.write(&out, &vec![f32::NAN; c]);
    run(
        &gpu,
        pool::avg_pool2d(&gpu, &tx, dims, k, 1, 0, true, &out).unwrap(),
    );
    let got: Vec<f32> = gpu.read(&out).unwrap();
    assert_close(&format!("avg pool {k}x{k}"), &got, &mean, 0.0, 1e-6);

    let big = k + 1;
    let dims = [1, big, big, c];
    let tx = gpu.zeros("x", &[big * big * c]).unwrap();
    let what = format!("a {big}x{big} window");
    for variant in pool::MaxPoolVariant::ALL {
        assert_refused(
            pool::max_pool2d_with(&gpu, variant, &tx, dims, big, 1, 0, &out),
            &what,
        );
    }
    assert_refused(
        pool::avg_pool2d(&gpu, &tx, dims, big, 1, 0, true, &out),
        &what,
    );
}

#[test]
fn layernorm_row_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(25);
    // The workgroup kernel (the one for rows too wide for the per-row kernels): 3 walks of one
    // step per 64 columns and 12 reduction steps; 1,279,744 columns are 60,000 steps.
    let steps = |cols: usize| 3 * cols.div_ceil(64) + 12;
    let cols = edge(steps);
    let x = small_ints(&mut rng, cols, 4);
    let w = small_ints(&mut rng, cols, 3);
    let b = small_ints(&mut rng, cols, 3);
    let upload = |name, v: &[f32]| -> Tensor { gpu.upload(name, &[1, v.len()], v).unwrap() };
    let (tx, tw, tb) = (upload("x", &x), upload("w", &w), upload("b", &b));
    let tw = tw.view(&[cols]);
    let tb = tb.view(&[cols]);
    let out = gpu.zeros("out", &[1, cols]).unwrap();
    gpu.write(&out, &vec![f32::NAN; cols]);
    let variant = LayernormVariant::Workgroup;
    run(
        &gpu,
        ops::layernorm_with(&gpu, variant, &tx, &tw, &tb, 1e-6, &out).unwrap(),
    );
    let got: Vec<f32> = gpu.read(&out).unwrap();
    let want = crate::layernorm_reference(&x, &w, &b, cols, 1e-6);
    assert_close(&format!("layernorm of {cols}"), &got, &want, 2e-5, 1e-5);

    let wide = cols + 1;
    assert!(steps(wide) > LOOP_BUDGET);
    let tx = gpu.zeros("x", &[1, wide]).unwrap();
    let ones = gpu.zeros("w", &[wide]).unwrap();
    let out = gpu.zeros("out", &[1, wide]).unwrap();
    assert_refused(
        ops::layernorm_with(&gpu, variant, &tx, &ones, &ones, 1e-6, &out),
        &format!("rows of {wide}"),
    );
}

#[test]
fn fused_attention_at_the_loop_budget_runs_and_over_it_is_refused() {
    let gpu = gpu();
    let mut rng = Rng::new(26);
    // 64 tokens (one key per lane): a head of ~29,700 is the widest within the budget.
    let tokens = 64;
    let dh = edge(|dh| ops::fused_loop_steps(tokens, dh));
    let qkv = small_ints(&mut rng, tokens * 3 * dh, 2);
    let tq = gpu.upload("qkv", &[1, tokens, 3 * dh], &qkv).unwrap();
    let out = gpu.zeros("out", &[1, tokens, dh]).unwrap();
    gpu.write(&out, &vec![f32::NAN; tokens * dh]);
    run(
        &gpu,
        ops::attention(&gpu, &tq, 1, tokens, 1, dh, &out).unwrap(),
    );
    let got: Vec<f32> = gpu.read(&out).unwrap();
    let want = crate::attention_reference(&qkv, 1, tokens, 1, dh);
    assert_close(&format!("attention of head {dh}"), &got, &want, 1e-4, 1e-4);

    let wide = dh + 1;
    let tq = gpu.zeros("qkv", &[tokens * 3 * wide]).unwrap();
    let out = gpu.zeros("out", &[tokens * wide]).unwrap();
    assert_refused(
        ops::attention(&gpu, &tq, 1, tokens, 1, wide, &out),
        &format!("head size {wide}"),
    );
}

#[test]
fn nullcode_probe_at_the_loop_budget_runs_and_over_it_is_refused() {
    // One invocation walks all channels of its token, one step each. The token and the pattern
    // are one-hot at the last channel, so its cosine is 1 only if that channel was reached
    // (a loop cut short sees a zero token: cosine 0).
    let gpu = gpu();
    let c = LOOP_BUDGET;
    let mut one_hot = vec![0.0f32; c];
    one_hot[c - 1] = 2.0;
    let tx = gpu.upload("x", &[1, c], &one_hot).unwrap();
    let tp = gpu
        .upload(
            "pattern",
            &[c],
            &one_hot
                .iter()
                .map(|&v| (v != 0.0) as u8 as f32)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let (th, tc) = (gpu.zeros("h", &[1]).unwrap(), gpu.zeros("c", &[1]).unwrap());
    run(
        &gpu,
        ops::probe::nullcode_probe(&gpu, &tx, &tp, 1, 1, &th, &tc).unwrap(),
    );
    assert_eq!(
        gpu.read::<f32>(&tc).unwrap(),
        vec![1.0],
        "cosine over {c} channels"
    );
    assert_eq!(
        gpu.read::<f32>(&th).unwrap(),
        vec![1.0],
        "Hoyer over {c} channels"
    );

    let over = c + 1;
    let tx = gpu.zeros("x", &[1, over]).unwrap();
    let tp = gpu.zeros("pattern", &[over]).unwrap();
    assert_refused(
        ops::probe::nullcode_probe(&gpu, &tx, &tp, 1, 1, &th, &tc),
        &format!("{over} channels"),
    );
}

#[test]
fn attention_rows_over_the_loop_budget_are_refused() {
    // A row softmax of 15,001 tokens runs 3 T + Tp = 60,007 loop steps in one invocation, over
    // gpu::LOOP_BUDGET: llvmpipe would cut its loops short silently, so the matmul path refuses
    // it before allocating anything. (15,000 tokens, 60,000 steps, are within the budget.)
    let gpu = gpu();
    let refused = ops::Attention::with_matmul(
        &gpu,
        ops::AttentionVariant::Matmul,
        MatmulVariant::Tiled,
        1,
        15_001,
        1,
        64,
    );
    assert_refused(refused, "15001 tokens");
}

#[test]
fn global_average_at_the_loop_budget_runs_and_over_it_is_refused() {
    // One invocation averages all positions of its channel: 60,001 positions are one loop step
    // over gpu::LOOP_BUDGET, and refused; 60,000 run and give the mean.
    let gpu = gpu();
    let over = LOOP_BUDGET + 1;
    let x = gpu.zeros("x", &[over]).unwrap();
    let out = gpu.zeros("out", &[1]).unwrap();
    assert_refused(
        ops::pool::global_avg_pool(&gpu, &x, 1, over, 1, &out),
        &format!("{over} positions"),
    );
    let values: Vec<f32> = (0..LOOP_BUDGET).map(|i| (i % 7) as f32).collect();
    let x = gpu.upload("x", &[LOOP_BUDGET], &values).unwrap();
    run(
        &gpu,
        ops::pool::global_avg_pool(&gpu, &x, 1, LOOP_BUDGET, 1, &out).unwrap(),
    );
    let got: Vec<f32> = gpu.read(&out).unwrap();
    let want = values.iter().map(|&v| v as f64).sum::<f64>() / LOOP_BUDGET as f64;
    assert!(
        (got[0] as f64 - want).abs() < 1e-3,
        "mean {} against {want}",
        got[0]
    );
}
