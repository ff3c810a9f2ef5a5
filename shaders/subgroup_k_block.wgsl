// Prelude of matmul_subgroup and conv2d_subgroup: the 8-deep k block of their register-blocked
// GEMM on a subgroup of 8 lanes. Each kernel loads a KBlock from its own weight binding
// (its load_k_block) and row_block multiplies it by one row of A held across the lanes.

// B's rows k0..k0+7 at one vec4 column: what a lane multiplies in one 8-deep k block.
struct KBlock {
    b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
    b4: vec4<f32>, b5: vec4<f32>, b6: vec4<f32>, b7: vec4<f32>,
}

// One row's contribution of an 8-deep k block: x (lane i's value is A[row, k0 + i]) times
// B[k0 + i] summed over i. subgroupBroadcast is a register shuffle on llvmpipe.
fn row_block(x: f32, q: KBlock) -> vec4<f32> {
    return subgroupBroadcast(x, 0u) * q.b0 + subgroupBroadcast(x, 1u) * q.b1
         + subgroupBroadcast(x, 2u) * q.b2 + subgroupBroadcast(x, 3u) * q.b3
         + subgroupBroadcast(x, 4u) * q.b4 + subgroupBroadcast(x, 5u) * q.b5
         + subgroupBroadcast(x, 6u) * q.b6 + subgroupBroadcast(x, 7u) * q.b7;
}
