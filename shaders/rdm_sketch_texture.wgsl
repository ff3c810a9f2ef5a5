// rdm_sketch_texture: rdm_sketch with the batch rows read from a texture copy (D % 4 == 0).
// Everything else is in the preludes flat_texture.wgsl, rows_texture.wgsl and
// rdm_sketch_common.wgsl.

@compute @workgroup_size(WG)
fn rdm_sketch_texture(@builtin(local_invocation_index) lane: u32,
                      @builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    sketch_rows(lane, wid.x + wid.y * nwg.x);
}
