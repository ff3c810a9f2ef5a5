//! The one registry of WGSL kernel sources. Each kernel is `shaders/<name>.wgsl` with entry
//! point `<name>`; a kernel may list preludes (shared WGSL functions) that are prepended.
//!
//! One directive is expanded before compilation, for kernels that must write out what a loop
//! would do (on lavapipe a subgroupBroadcast lane must be a constant and private arrays are
//! slow, so matmul_subgroup keeps one named accumulator per row):
//!
//! ```text
//! //#repeat r 4
//!     var acc{r} = vec4<f32>(0.0);
//! //#end
//! ```
//!
//! repeats the lines between the markers for r = 0..4, replacing `{r}` with the number (in
//! kernels and preludes alike).
//!
//! Kernels that read weights declare their element type as `alias W = f32;` and convert each
//! load to f32; with `--f16-weights` they are compiled with `W = f16` (`source(name, true)`).
//! The texture kernels read weights from a storage texture whose declared format follows
//! (`WEIGHT_TEXTURE`: rgba32float, rgba16float for f16 weights).

const EPILOGUE: &str = include_str!("../../shaders/epilogue.wgsl");
const EPILOGUE_F32: &str = include_str!("../../shaders/epilogue_f32.wgsl");
const EPILOGUE_VEC4: &str = include_str!("../../shaders/epilogue_vec4.wgsl");
const STATS_TAP_COMMON: &str = include_str!("../../shaders/stats_tap_common.wgsl");
const ROWS_VEC4: &str = include_str!("../../shaders/rows_vec4.wgsl");
const ROWS_SCALAR: &str = include_str!("../../shaders/rows_scalar.wgsl");
const ROWS_TEXTURE: &str = include_str!("../../shaders/rows_texture.wgsl");
const RDM_ROWS: &str = include_str!("../../shaders/rdm_rows.wgsl");
const RDM_ROWSTATS_COMMON: &str = include_str!("../../shaders/rdm_rowstats_common.wgsl");
const RDM_SKETCH_COMMON: &str = include_str!("../../shaders/rdm_sketch_common.wgsl");
const COMPENSATED: &str = include_str!("../../shaders/compensated.wgsl");
const SUBGROUP_K_BLOCK: &str = include_str!("../../shaders/subgroup_k_block.wgsl");
const MATMUL_SUBGROUP_COMMON: &str = include_str!("../../shaders/matmul_subgroup_common.wgsl");
const CONV2D_SUBGROUP_COMMON: &str = include_str!("../../shaders/conv2d_subgroup_common.wgsl");
const SUBGROUP_LOADS_BUFFER: &str = include_str!("../../shaders/subgroup_loads_buffer.wgsl");
const SUBGROUP_LOADS_TEXTURE: &str = include_str!("../../shaders/subgroup_loads_texture.wgsl");
const FLAT_TEXTURE: &str = include_str!("../../shaders/flat_texture.wgsl");
const DEPTHWISE_COMMON: &str = include_str!("../../shaders/depthwise_conv2d_common.wgsl");
const RESIDUAL_BUFFER: &str = include_str!("../../shaders/residual_buffer.wgsl");
const RESIDUAL_TEXTURE: &str = include_str!("../../shaders/residual_texture.wgsl");
const MAX_POOL2D_COMMON: &str = include_str!("../../shaders/max_pool2d_common.wgsl");
const LAYERNORM_ROWS_COMMON: &str = include_str!("../../shaders/layernorm_rows_common.wgsl");

macro_rules! kernels {
    ($($name:literal $(+ $prelude:ident)*),* $(,)?) => {
        /// (name, preludes, body) of every kernel.
        const KERNELS: &[(&str, &[&str], &str)] = &[
            $(($name, &[$($prelude),*], include_str!(concat!("../../shaders/", $name, ".wgsl")))),*
        ];
    };
}

kernels! {
    "matmul_tiled" + EPILOGUE + EPILOGUE_F32,
    "matmul_subgroup" + EPILOGUE + EPILOGUE_VEC4 + RESIDUAL_BUFFER + SUBGROUP_K_BLOCK
        + SUBGROUP_LOADS_BUFFER + MATMUL_SUBGROUP_COMMON,
    "matmul_texture" + EPILOGUE + EPILOGUE_VEC4 + SUBGROUP_K_BLOCK + FLAT_TEXTURE
        + RESIDUAL_TEXTURE + SUBGROUP_LOADS_TEXTURE + MATMUL_SUBGROUP_COMMON,
    "layernorm",
    "layernorm_rows" + LAYERNORM_ROWS_COMMON,
    "layernorm_rows_texture" + FLAT_TEXTURE + LAYERNORM_ROWS_COMMON,
    "attention",
    "attention_heads",
    "attention_softmax",
    "attention_softmax_texture" + FLAT_TEXTURE,
    "attention_merge",
    "attention_heads_texture" + FLAT_TEXTURE,
    "attention_merge_texture" + FLAT_TEXTURE,
    "patch_im2col",
    "vit_tokens",
    "conv2d_tiled" + EPILOGUE + EPILOGUE_F32,
    "conv2d_subgroup" + EPILOGUE + EPILOGUE_VEC4 + RESIDUAL_BUFFER + SUBGROUP_K_BLOCK
        + SUBGROUP_LOADS_BUFFER + CONV2D_SUBGROUP_COMMON,
    "conv2d_texture" + EPILOGUE + EPILOGUE_VEC4 + SUBGROUP_K_BLOCK + FLAT_TEXTURE
        + RESIDUAL_TEXTURE + SUBGROUP_LOADS_TEXTURE + CONV2D_SUBGROUP_COMMON,
    "depthwise_conv2d" + EPILOGUE + EPILOGUE_VEC4 + RESIDUAL_BUFFER + DEPTHWISE_COMMON,
    "depthwise_conv2d_texture" + EPILOGUE + EPILOGUE_VEC4 + FLAT_TEXTURE + RESIDUAL_TEXTURE
        + DEPTHWISE_COMMON,
    "avg_pool2d",
    "max_pool2d" + MAX_POOL2D_COMMON,
    "max_pool2d_vec4" + MAX_POOL2D_COMMON,
    "max_pool2d_texture" + FLAT_TEXTURE + MAX_POOL2D_COMMON,
    "global_avg_pool",
    "nchw_to_nhwc",
    "rdm_rowstats" + ROWS_VEC4 + RDM_ROWS + RDM_ROWSTATS_COMMON,
    "rdm_rowstats_scalar" + ROWS_SCALAR + RDM_ROWS + RDM_ROWSTATS_COMMON,
    "rdm_store",
    "rdm_sketch" + ROWS_VEC4 + RDM_ROWS + RDM_SKETCH_COMMON,
    "rdm_sketch_scalar" + ROWS_SCALAR + RDM_ROWS + RDM_SKETCH_COMMON,
    "rdm_sketch_texture" + FLAT_TEXTURE + ROWS_TEXTURE + RDM_ROWS + RDM_SKETCH_COMMON,
    "rdm_gram_tiled",
    "rdm_gram_subgroup",
    "stats_tap" + COMPENSATED + STATS_TAP_COMMON,
    "stats_tap_scalar" + COMPENSATED + STATS_TAP_COMMON,
    "stats_tap_texture" + COMPENSATED + FLAT_TEXTURE + STATS_TAP_COMMON,
    "stats_fold" + COMPENSATED,
    "stats_fold_channels",
    "gather_channels",
    "nullcode_probe" + COMPENSATED,
}

/// The declaration of the weight element type in a kernel that reads weights (matmul B, conv
/// kernels): its weight bindings are `array<W>` or `array<vec4<W>>`, converted to f32 on load.
const WEIGHT_ALIAS: &str = "alias W = f32;";

/// The weight binding of the texture kernels (subgroup_loads_texture.wgsl,
/// depthwise_conv2d_texture.wgsl), as written and as compiled for f16 weights: the texel format of a storage texture is part of its type.
const WEIGHT_TEXTURE: [&str; 2] = [
    "var b_tex: texture_storage_2d<rgba32float, read>;",
    "var b_tex: texture_storage_2d<rgba16float, read>;",
];

/// The full WGSL source of kernel `name` (preludes first), with its weights read as f16 when
/// `f16_weights` is set (`enable f16;` first and `W = f16`, or the f16 weight texture); the
/// error says why not.
pub fn source(name: &str, f16_weights: bool) -> Result<String, String> {
    let (_, preludes, body) = KERNELS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or("no shader of that name is registered")?;
    let mut s = String::new();
    if f16_weights {
        if !reads_weights(name) {
            return Err(format!(
                "it cannot read f16 tensors (no '{WEIGHT_ALIAS}' nor '{}'): only weights may be \
                 f16",
                WEIGHT_TEXTURE[0]
            ));
        }
        s.push_str("enable f16;\n");
    }
    for p in *preludes {
        s.push_str(&expand_repeats(p));
        s.push('\n');
    }
    s.push_str(&expand_repeats(body));
    if f16_weights {
        s = s.replacen(WEIGHT_ALIAS, "alias W = f16;", 1).replacen(
            WEIGHT_TEXTURE[0],
            WEIGHT_TEXTURE[1],
            1,
        );
    }
    Ok(s)
}

/// Whether kernel `name` can read f16 weights (it declares `alias W = f32;`, or the weight
/// texture, in its file or a prelude).
pub fn reads_weights(name: &str) -> bool {
    KERNELS.iter().any(|(n, preludes, body)| {
        *n == name
            && (body.contains(WEIGHT_ALIAS)
                || std::iter::once(body)
                    .chain(preludes.iter())
                    .any(|p| p.contains(WEIGHT_TEXTURE[0])))
    })
}

/// Expands the `//#repeat VAR COUNT` ... `//#end` blocks of a kernel (see the module docs).
/// Blocks do not nest; a malformed directive is a bug in shaders/ and panics in the tests that
/// compile every kernel.
fn expand_repeats(source: &str) -> String {
    let mut out = String::with_capacity(source.len() * 2);
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let Some(directive) = line.trim().strip_prefix("//#repeat ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let mut words = directive.split_whitespace();
        let (Some(var), Some(count)) = (words.next(), words.next()) else {
            panic!("malformed directive '{line}': expected //#repeat VAR COUNT");
        };
        let count: usize = count
            .parse()
            .unwrap_or_else(|_| panic!("malformed directive '{line}': COUNT is not a number"));
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| l.trim() != "//#end")
            .collect();
        let pattern = format!("{{{var}}}");
        for i in 0..count {
            for l in &body {
                out.push_str(&l.replace(&pattern, &i.to_string()));
                out.push('\n');
            }
        }
    }
    out
}

/// Every registered kernel name (tests compile them all).
pub fn names() -> impl Iterator<Item = &'static str> {
    KERNELS.iter().map(|(n, _, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::expand_repeats;

    #[test]
    fn repeat_blocks_expand_in_place() {
        let src = "a\n//#repeat r 3\n  x{r} = y{r};\n//#end\nb\n";
        assert_eq!(
            expand_repeats(src),
            "a\n  x0 = y0;\n  x1 = y1;\n  x2 = y2;\nb\n"
        );
    }

    /// Kernel `name` declares each (constant, value) the host dispatches by as
    /// `const NAME: u32 = VALUEu;`, and holds one `lo` and one `hi` accumulator (its lanes'
    /// two vec4) per row of its block, `rows` being the value of the first constant.
    fn assert_block(name: &str, consts: [(&str, usize); 2]) {
        let src = super::source(name, false).unwrap();
        for (constant, value) in consts {
            let decl = format!("const {constant}: u32 = {value}u;");
            assert!(
                src.contains(&decl),
                "shaders/{name}.wgsl must declare {decl}"
            );
        }
        let rows = consts[0].1;
        assert_eq!(src.matches("var lo").count(), rows, "{name}");
        assert_eq!(src.matches("var hi").count(), rows, "{name}");
    }

    #[test]
    fn matmul_subgroup_block_matches_the_dispatch() {
        use crate::gpu::ops::{SUBGROUP_COLS, SUBGROUP_ROWS};
        for kernel in ["matmul_subgroup", "matmul_texture"] {
            assert_block(kernel, [("ROWS", SUBGROUP_ROWS), ("COLS", SUBGROUP_COLS)]);
        }
    }

    #[test]
    fn matmul_texture_width_matches_the_copies() {
        use crate::gpu::ops::TEXTURE_WIDTH;
        let src = super::FLAT_TEXTURE;
        let mask = format!("const TEX_MASK: u32 = {}u;", TEXTURE_WIDTH - 1);
        let shift = format!(
            "const TEX_SHIFT: u32 = {}u;",
            TEXTURE_WIDTH.trailing_zeros()
        );
        assert!(TEXTURE_WIDTH.is_power_of_two());
        assert!(
            src.contains(&mask) && src.contains(&shift),
            "{mask} {shift}"
        );
    }

    #[test]
    fn conv2d_subgroup_block_matches_the_dispatch() {
        use crate::gpu::ops::conv::{SUBGROUP_CHANNELS, SUBGROUP_PIXELS};
        for kernel in ["conv2d_subgroup", "conv2d_texture"] {
            assert_block(
                kernel,
                [("PIXELS", SUBGROUP_PIXELS), ("CHANNELS", SUBGROUP_CHANNELS)],
            );
        }
    }
}
