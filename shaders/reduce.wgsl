// Reductions: tree reductions in workgroup memory, 256 threads per workgroup. Every loop
// runs at most len / (threads of the dispatch) iterations; the host sizes dispatches so
// that stays far below 65,535 (lavapipe returns wrong results past that).

struct Params {
    len: u32,
    // partial_sum: 0 = sum x*y, 1 = sum x*x, 2 = sum x. final_sum: index of the output.
    mode: u32,
    // partial_sum: first partial written; final_sum: first partial read.
    off: u32,
    // channel_sum: the [n, c, hw] view.
    n: u32,
    c: u32,
    hw: u32,
    alpha: f32,
    // sum_splits: number of stacked [len] slices.
    splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read> partials_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

// Stage 1: each workgroup reduces a grid-stride share of the input to partials[off + group].
@compute @workgroup_size(256)
fn partial_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = group_index(wid, nwg);
    let threads = nwg.x * nwg.y * WG;
    var acc = 0.0;
    for (var i = g * WG + lid.x; i < p.len; i = i + threads) {
        let v = x[i];
        if p.mode == 0u {
            acc = acc + v * y[i];
        } else if p.mode == 1u {
            acc = acc + v * v;
        } else {
            acc = acc + v;
        }
    }
    let total = wg_sum(lid.x, acc);
    if lid.x == 0u {
        partials[p.off + g] = total;
    }
}

// Stage 2 (one workgroup): out[mode] = alpha * sum(partials_in[off .. off + len]).
@compute @workgroup_size(256)
fn final_sum(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.len; i = i + WG) {
        acc = acc + partials_in[p.off + i];
    }
    let total = wg_sum(lid.x, acc);
    if lid.x == 0u {
        out[p.mode] = p.alpha * total;
    }
}

// One workgroup per channel of a [n, c, hw] view: out[ch] = alpha * sum over n and hw.
// Also column sums ([rows, cols] = [n, c, 1]) and global average pooling ([1, n*c, hw]).
@compute @workgroup_size(256)
fn channel_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = group_index(wid, nwg);
    if ch >= p.c { return; }
    let count = p.n * p.hw;
    var acc = 0.0;
    for (var j = lid.x; j < count; j = j + WG) {
        let n = j / p.hw;
        let i = j % p.hw;
        acc = acc + x[(n * p.c + ch) * p.hw + i];
    }
    let total = wg_sum(lid.x, acc);
    if lid.x == 0u {
        out[ch] = p.alpha * total;
    }
}

// out[i] = sum over s of x[s * len + i]: folds the split-K partial products of a GEMM.
@compute @workgroup_size(256)
fn sum_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = group_index(wid, nwg) * WG + lid.x;
    if i >= p.len { return; }
    var acc = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
        acc = acc + x[s * p.len + i];
    }
    out[i] = acc;
}
