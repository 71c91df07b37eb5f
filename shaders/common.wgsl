// What every shader shares. The host compiles each shader file with this one appended (after
// the file's own lines, so that an error's line number in the file is its own; see
// host/src/engine/gpu/kernel.rs `wgsl!`).

// Threads per workgroup: every entry point's @workgroup_size.
const WG: u32 = 256u;

// The tree reductions' workgroup memory.
var<workgroup> red: array<f32, 256>;

// This workgroup's index: dispatches are 2-D grids of workgroups, x fastest (one dimension
// stays under the 65,535 workgroups a dispatch may have).
fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// This thread's index over the whole dispatch.
fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return group_index(wid, nwg) * WG + lid.x;
}

// The sum of `v` over the workgroup (with `is_max`, the maximum), returned to every thread: a
// tree in workgroup memory, the same order on every run.
fn wg_reduce(lid: u32, v: f32, is_max: bool) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if lid < stride {
            if is_max {
                red[lid] = max(red[lid], red[lid + stride]);
            } else {
                red[lid] = red[lid] + red[lid + stride];
            }
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_sum(lid: u32, v: f32) -> f32 {
    return wg_reduce(lid, v, false);
}

fn wg_max(lid: u32, v: f32) -> f32 {
    return wg_reduce(lid, v, true);
}

// A binary net's sign: +1 at +0 and -0 (a bit has no zero), else -1.
fn sign_pm1(v: f32) -> f32 {
    return select(-1.0, 1.0, v >= 0.0);
}
