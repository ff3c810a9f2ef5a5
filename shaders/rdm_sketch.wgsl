// rdm_sketch: the count sketch of each valid batch row for D % 4 == 0, the row read as vec4.
// Everything else is in the preludes rows_vec4.wgsl and rdm_sketch_common.wgsl.

@compute @workgroup_size(WG)
fn rdm_sketch(@builtin(local_invocation_index) lane: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    sketch_rows(lane, wid.x + wid.y * nwg.x);
}
