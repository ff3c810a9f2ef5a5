// stats_fold_channels: folds one batch's per-(image, chunk, channel) partials that stats_tap
// wrote into the per-channel running totals on the GPU, and writes the batch's pooled features.
// Invocation (i, c), for each valid image i and channel c:
//   count = sum over the chunks of image i of the active counts of channel c (a u32: at most P);
//   firing[c] += count; if count > 0: images[c] += 1 and by_class[label_i, c] += 1 (when
//     classes > 0); invocation (i, 0) also adds image i to class_images[label_i]: 64-bit totals kept as (lo, hi) u32 pairs, added atomically (integer adds
//     commute, so the totals do not depend on the order: runs are reproducible);
//   pooled[i, c] = (sum over the chunks of the chunk sums, in chunk order) / P.
// One invocation per (image, channel) keeps the loop per invocation at `chunks` iterations
// (llvmpipe silently ends loops after 65,535 iterations per invocation: see stats_tap_common).
//
// Bindings: 0 params (Meta); 1 batch [4 + B] u32: n_valid at 0, labels from 4 (read);
//   2 item_counts [B * chunks, C] u32 (read); 3 item_sums [B * chunks, C] f32 (read);
//   4 channel_state u32 (read_write, atomic): [firing (lo, hi) x C | images (lo, hi) x C |
//     by_class (lo, hi) x K x C | class_images (lo, hi) x K]; 5 pooled [B, C] f32 (rows >= n_valid untouched).
// Grid: ceil(C / 64) * B workgroups of 64 (any grid shape, linear id g): image g / ceil(C / 64),
// channels 64 * (g % ceil(C / 64)) + lane.

struct Meta {
    channels: u32, chunks: u32, positions: u32, classes: u32,
}

@group(0) @binding(0) var<uniform> params: Meta;
@group(0) @binding(1) var<storage, read> batch: array<u32>;
@group(0) @binding(2) var<storage, read> item_counts: array<u32>;
@group(0) @binding(3) var<storage, read> item_sums: array<f32>;
@group(0) @binding(4) var<storage, read_write> channel_state: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> pooled: array<f32>;

// Add v to the u64 at words (i, i + 1): the one add that wraps the low word carries.
fn add64(i: u32, v: u32) {
    let old = atomicAdd(&channel_state[i], v);
    if (old + v < old) {
        atomicAdd(&channel_state[i + 1u], 1u);
    }
}

@compute @workgroup_size(64)
fn stats_fold_channels(@builtin(local_invocation_index) lane: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let C = params.channels;
    let blocks = (C + 63u) / 64u;
    let g = wid.x + wid.y * nwg.x;
    let i = g / blocks;
    let c = (g % blocks) * 64u + lane;
    if (c >= C || i >= batch[0]) { return; }
    var count = 0u;
    var sum = 0.0;
    for (var k = 0u; k < params.chunks; k++) {
        let idx = (i * params.chunks + k) * C + c;
        count += item_counts[idx];
        sum += item_sums[idx];
    }
    if (c == 0u && params.classes > 0u) {
        add64(4u * C + 2u * params.classes * C + 2u * batch[4u + i], 1u);
    }
    if (count > 0u) {
        add64(2u * c, count);
        add64(2u * C + 2u * c, 1u);
        if (params.classes > 0u) {
            add64(4u * C + 2u * (batch[4u + i] * C + c), 1u);
        }
    }
    pooled[i * C + c] = sum / f32(params.positions);
}
