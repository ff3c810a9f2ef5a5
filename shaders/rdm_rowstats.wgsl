// rdm_rowstats: each image's shift and centred sums for D % 4 == 0, the row read as vec4.
// Everything else is in the preludes rows_vec4.wgsl and rdm_rowstats_common.wgsl.

@compute @workgroup_size(256)
fn rdm_rowstats(@builtin(local_invocation_index) lane: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    row_stats(lane, wid.x + wid.y * nwg.x);
}
