//! Launching the kernels that read their inputs from textures (`matmul_texture`,
//! `conv2d_texture`, `depthwise_conv2d_texture`): the copies of A (the activations), B (the
//! weights) and the epilogue's residual into scratch textures, encoded before the launch, and
//! the launch that reads them (shaders/subgroup_loads_texture.wgsl says why: on lavapipe a
//! texel load costs a fraction of a storage-buffer load).

use crate::error::Result;
use crate::gpu::ops::Epilogue;
use crate::gpu::{Dispatch, Elem, Gpu, Resource, Tensor, TextureCopy};

/// How a texture kernel loads A: one f32 per texel (r32float; the GEMM kernels, whose lanes
/// load single elements of A) or four (rgba32float; the depthwise kernel's vec4 loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ATexels {
    Scalar,
    Vec4,
}

/// One launch of `kernel` with its pipeline `constants` (bindings 1 and 2 textures, 3 and 4 the
/// epilogue's bias and scale, 5 its residual as a texture, 6 out) with the copies of A's first
/// `a_len` elements, B's first `b_len` and the residual into scratch textures (A as `a_texels`
/// says, B rgba32float or rgba16float for f16 weights, the residual rgba32float), or `None`
/// when a texture would exceed the adapter's limits or a tensor's offset cannot start a copy
/// (callers then run the kernel's storage-buffer twin).
#[allow(clippy::too_many_arguments)]
pub(crate) fn texture_dispatch<M: bytemuck::Pod>(
    gpu: &Gpu,
    kernel: &'static str,
    constants: &[(&str, f64)],
    (a, a_len, a_texels): (&Tensor, usize, ATexels),
    (b, b_len): (&Tensor, usize),
    out: &Tensor,
    epilogue: &Epilogue,
    meta: &M,
    groups: [u32; 3],
) -> Result<Option<Dispatch>> {
    let b_format = match b.elem {
        Elem::F32 => wgpu::TextureFormat::Rgba32Float,
        Elem::F16 => wgpu::TextureFormat::Rgba16Float,
    };
    let a_format = match a_texels {
        ATexels::Scalar => wgpu::TextureFormat::R32Float,
        ATexels::Vec4 => wgpu::TextureFormat::Rgba32Float,
    };
    let (Some(a_copy), Some(b_copy)) = (
        TextureCopy::to_scratch(gpu, "texture kernel A", a, a_len, a_format),
        TextureCopy::to_scratch(gpu, "texture kernel B", b, b_len, b_format),
    ) else {
        return Ok(None);
    };
    let a_view = a_copy.dst.create_view(&Default::default());
    let b_view = b_copy.dst.create_view(&Default::default());
    let mut copies = vec![a_copy, b_copy];
    // The residual, read in the epilogue (shaders/residual_texture.wgsl), from a texture copy
    // too; without one the binding holds a 1x1 texture that is never read.
    let residual = match epilogue.residual {
        Some(r) => {
            let Some(copy) = TextureCopy::to_scratch(
                gpu,
                "texture kernel residual",
                r,
                r.len(),
                wgpu::TextureFormat::Rgba32Float,
            ) else {
                return Ok(None);
            };
            let texture = copy.dst.clone();
            copies.push(copy);
            texture
        }
        None => {
            let Some(texture) =
                gpu.scratch_texture("no residual", wgpu::TextureFormat::Rgba32Float, 1, 1)
            else {
                return Ok(None);
            };
            texture
        }
    };
    let res_view = residual.create_view(&Default::default());
    let dummy = gpu.dummy();
    let resources = [
        Resource::Texture(&a_view),
        Resource::Texture(&b_view),
        Resource::Tensor(epilogue.bias.unwrap_or(&dummy)),
        Resource::Tensor(epilogue.scale.unwrap_or(&dummy)),
        Resource::Texture(&res_view),
        Resource::Tensor(out),
    ];
    Dispatch::with_textures(gpu, kernel, constants, meta, &resources, groups, copies).map(Some)
}
