// rdm_sketch_scalar: rdm_sketch for any D, the row read one float at a time. Everything else is
// in the preludes rows_scalar.wgsl and rdm_sketch_common.wgsl.

@compute @workgroup_size(WG)
fn rdm_sketch_scalar(@builtin(local_invocation_index) lane: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    sketch_rows(lane, wid.x + wid.y * nwg.x);
}
