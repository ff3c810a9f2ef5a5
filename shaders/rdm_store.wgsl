// rdm_store: append the valid rows of a batch to the row store that one buffer of a chunked
// store holds. Batch row r < nb (cursor = (n0, nb)) becomes store row s = row_offset + n0 + r;
// this dispatch writes it only when s lies in [row0, row0 + dst_rows), the rows of this buffer
// (a store larger than one binding is split over several buffers, one dispatch each).
//
// Bindings: 0 params; 1 src [rows, width]; 2 cursor [4] u32; 3 dst [dst_rows, width].
// Grid: (ceil(width / (WG * SPAN)), rows); invocation i of a row copies its SPAN consecutive
// floats from i * SPAN. A run per invocation, not one float: every dispatch of a chunked store
// covers the whole batch, and on llvmpipe an invocation whose row lies in another buffer costs
// what a working one does up to its loop, which it skips (one float per invocation made each
// store buffer cost 13-17 ns per batch entry on lavapipe, whether it took the rows or not).

struct Params { width: u32, rows: u32, row0: u32, dst_rows: u32, row_offset: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const WG: u32 = 64u;
// Floats per invocation; src/rdm/accumulator.rs sizes the grid with the same WG * SPAN.
const SPAN: u32 = 64u;

@compute @workgroup_size(WG)
fn rdm_store(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.y;
    let s = params.row_offset + cursor[0] + r;
    let mine = r < params.rows && r < cursor[1] && s >= params.row0
        && s < params.row0 + params.dst_rows;
    let c0 = min(gid.x * SPAN, params.width);
    let c1 = select(c0, min(c0 + SPAN, params.width), mine);
    let src0 = r * params.width;
    let dst0 = (s - params.row0) * params.width;
    for (var c = c0; c < c1; c++) {
        dst[dst0 + c] = src[src0 + c];
    }
}
