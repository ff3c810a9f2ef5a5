// rows_scalar: binding 1 `x`, flat feature rows of any length D (D % 4 != 0 leaves rows
// unaligned for vec4 loads), loaded one float at a time. Prelude of rdm_rowstats_scalar and
// rdm_sketch_scalar; rows_vec4.wgsl gives the same functions with vec4 loads.

@group(0) @binding(1) var<storage, read> x: array<f32>;

// x[i..i + valid] (1 <= valid <= 4), the components past `valid` 0; no load leaves the row.
fn load4(i: u32, valid: u32) -> vec4<f32> {
    let last = i + valid - 1u;
    let v = vec4<f32>(x[i], x[min(i + 1u, last)], x[min(i + 2u, last)], x[min(i + 3u, last)]);
    return select(vec4<f32>(0.0), v, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(valid));
}

fn load1(i: u32) -> f32 {
    return x[i];
}
