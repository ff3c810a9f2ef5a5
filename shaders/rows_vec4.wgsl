// rows_vec4: binding 1 `x`, flat feature rows of D floats with D % 4 == 0, read as vec4 (one
// 16-byte load per lane: on lavapipe every load is done lane by lane, so this reads a row in a
// quarter of the loads). Prelude of rdm_rowstats and rdm_sketch; rows_scalar.wgsl gives the
// same functions for any D.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

// x[i..i + 4] for i % 4 == 0 (here every quad of a row lies inside it: `valid` is 4).
fn load4(i: u32, valid: u32) -> vec4<f32> {
    return x[i / 4u];
}

fn load1(i: u32) -> f32 {
    return x[i / 4u][i % 4u];
}
