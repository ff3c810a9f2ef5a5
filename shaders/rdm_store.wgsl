// rdm_store: append the valid rows of a batch to the row store that one buffer of a chunked
// store holds. Batch row r < nb (cursor = (n0, nb)) becomes store row s = row_offset + n0 + r;
// this dispatch writes it only when s lies in [row0, row0 + dst_rows), the rows of this buffer
// (a store larger than one binding is split over several buffers, one dispatch each).
//
// Bindings: 0 params; 1 src [rows, width]; 2 cursor [4] u32; 3 dst [dst_rows, width].
// Grid: (ceil(width / 256), rows), 256 invocations along the row.

struct Params { width: u32, rows: u32, row0: u32, dst_rows: u32, row_offset: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> cursor: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn rdm_store(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let r = gid.y;
    if (c >= params.width || r >= params.rows || r >= cursor[1]) { return; }
    let s = params.row_offset + cursor[0] + r;
    if (s < params.row0 || s >= params.row0 + params.dst_rows) { return; }
    dst[(s - params.row0) * params.width + c] = src[r * params.width + c];
}
