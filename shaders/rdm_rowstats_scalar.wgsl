// rdm_rowstats_scalar: rdm_rowstats for any D, the row read one float at a time. Everything
// else is in the preludes rows_scalar.wgsl and rdm_rowstats_common.wgsl.

@compute @workgroup_size(256)
fn rdm_rowstats_scalar(@builtin(local_invocation_index) lane: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    row_stats(lane, wid.x + wid.y * nwg.x);
}
