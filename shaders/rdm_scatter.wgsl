// rdm_scatter: add up the split-K partial Gram rows of a batch in the scratch
// [splits, rows, stride] (row r holds the inner products of batch row r with store rows 0..)
// and file them into the packed lower triangle of the
// Gram matrix: store row i = row_offset + n0 + r keeps columns j <= i at packed index
// i(i+1)/2 + j. One buffer of a chunked triangle holds whole rows [g_row0, g_row0 + g_rows),
// starting at packed index `base` = g_row0(g_row0+1)/2; this dispatch writes only those.
//
// Bindings: 0 params; 1 scratch [splits, rows, stride]; 2 cursor [4] u32; 3 gram (packed rows).
// Grid: (ceil(stride / 256), rows), 256 invocations along the row. The host keeps the row
// count at most 65,535 so that i(i+1) fits in u32.

struct Params { stride: u32, rows: u32, g_row0: u32, g_rows: u32, base: u32, row_offset: u32, splits: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> scratch: array<f32>;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> gram: array<f32>;

@compute @workgroup_size(256)
fn rdm_scatter(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let r = gid.y;
    if (j >= params.stride || r >= params.rows || r >= cursor[1]) { return; }
    let i = params.row_offset + cursor[0] + r;
    if (j > i || i < params.g_row0 || i >= params.g_row0 + params.g_rows) { return; }
    // The split-K partial sums of the Gram kernel, added in a fixed order.
    var v = 0.0;
    for (var s = 0u; s < params.splits; s++) {
        v += scratch[(s * params.rows + r) * params.stride + j];
    }
    gram[i * (i + 1u) / 2u - params.base + j] = v;
}
