//! The one registry of WGSL kernel sources. Each kernel is `shaders/<name>.wgsl` with entry
//! point `<name>`; a kernel may list preludes (shared WGSL functions) that are prepended.

const EPILOGUE: &str = include_str!("../../shaders/epilogue.wgsl");
const STATS_TAP_COMMON: &str = include_str!("../../shaders/stats_tap_common.wgsl");

macro_rules! kernels {
    ($($name:literal $(+ $prelude:ident)*),* $(,)?) => {
        /// (name, preludes, body) of every kernel.
        const KERNELS: &[(&str, &[&str], &str)] = &[
            $(($name, &[$($prelude),*], include_str!(concat!("../../shaders/", $name, ".wgsl")))),*
        ];
    };
}

kernels! {
    "matmul_tiled" + EPILOGUE,
    "matmul_subgroup" + EPILOGUE,
    "layernorm",
    "attention",
    "attention_heads",
    "attention_softmax",
    "attention_merge",
    "patch_im2col",
    "vit_tokens",
    "conv2d_tiled" + EPILOGUE,
    "conv2d_subgroup" + EPILOGUE,
    "depthwise_conv2d" + EPILOGUE,
    "avg_pool2d",
    "max_pool2d",
    "global_avg_pool",
    "nchw_to_nhwc",
    "rdm_rowstats",
    "rdm_store",
    "rdm_sketch",
    "rdm_gram_tiled",
    "rdm_gram_subgroup",
    "rdm_scatter",
    "stats_tap" + STATS_TAP_COMMON,
    "stats_tap_scalar" + STATS_TAP_COMMON,
    "stats_fold",
    "stats_fold_channels",
    "gather_channels",
    "nullcode_probe",
}

/// The full WGSL source of kernel `name` (preludes first), or `None` if unknown.
pub fn source(name: &str) -> Option<String> {
    KERNELS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, preludes, body)| {
            let mut s = String::new();
            for p in *preludes {
                s.push_str(p);
                s.push('\n');
            }
            s.push_str(body);
            s
        })
}

/// Every registered kernel name (tests compile them all).
pub fn names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|(n, _, _)| *n)
}
