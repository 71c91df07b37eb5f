// Batch norm over a [n, c, hw] view, PyTorch semantics: training normalises with the biased
// batch variance and updates the running statistics with the unbiased one. Statistics and
// gradient sums use one workgroup per channel (tree reduction in workgroup memory, two
// passes over the channel for the variance so it does not cancel).

struct Params {
    n: u32,
    c: u32,
    hw: u32,
    eps: f32,
    momentum: f32,
    // Bit 0: gamma given; bit 1: beta given; bit 2: training (batch statistics).
    flags: u32,
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> inv_std: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read> beta: array<f32>;
@group(0) @binding(7) var<storage, read> running_mean_in: array<f32>;
@group(0) @binding(8) var<storage, read> running_var_in: array<f32>;
@group(0) @binding(9) var<storage, read> sum_dy_xhat_in: array<f32>;
@group(0) @binding(10) var<storage, read> sum_dy_in: array<f32>;
@group(0) @binding(11) var<storage, read_write> y: array<f32>;
@group(0) @binding(12) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(13) var<storage, read_write> inv_std_out: array<f32>;
@group(0) @binding(14) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(15) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(16) var<storage, read_write> sum_dy_xhat: array<f32>;
@group(0) @binding(17) var<storage, read_write> sum_dy: array<f32>;

fn at(ch: u32, j: u32) -> u32 {
    return ((j / p.hw) * p.c + ch) * p.hw + j % p.hw;
}

// Training statistics: one workgroup per channel.
@compute @workgroup_size(256)
fn bn_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = group_index(wid, nwg);
    if ch >= p.c { return; }
    let count = p.n * p.hw;
    var acc = 0.0;
    for (var j = lid.x; j < count; j = j + WG) { acc = acc + x[at(ch, j)]; }
    let mu = wg_sum(lid.x, acc) / f32(count);
    var acc2 = 0.0;
    for (var j = lid.x; j < count; j = j + WG) {
        let d = x[at(ch, j)] - mu;
        acc2 = acc2 + d * d;
    }
    let var_biased = wg_sum(lid.x, acc2) / f32(count);
    if lid.x == 0u {
        mean_out[ch] = mu;
        inv_std_out[ch] = 1.0 / sqrt(var_biased + p.eps);
        let var_unbiased = var_biased * f32(count) / f32(max(count, 2u) - 1u);
        running_mean[ch] = (1.0 - p.momentum) * running_mean[ch] + p.momentum * mu;
        running_var[ch] = (1.0 - p.momentum) * running_var[ch] + p.momentum * var_unbiased;
    }
}

// Eval statistics: one thread per channel.
@compute @workgroup_size(256)
fn bn_eval_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = index(wid, nwg, lid);
    if ch >= p.c { return; }
    mean_out[ch] = running_mean_in[ch];
    inv_std_out[ch] = 1.0 / sqrt(running_var_in[ch] + p.eps);
}

// y = (x - mean) * inv_std * gamma + beta, one thread per element.
@compute @workgroup_size(256)
fn bn_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ch = (i / p.hw) % p.c;
    var v = (x[i] - mean[ch]) * inv_std[ch];
    if (p.flags & 1u) != 0u { v = v * gamma[ch]; }
    if (p.flags & 2u) != 0u { v = v + beta[ch]; }
    y[i] = v;
}

// Per channel: sum(dy * xhat) (= dgamma) and sum(dy) (= dbeta).
@compute @workgroup_size(256)
fn bn_bwd_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let ch = group_index(wid, nwg);
    if ch >= p.c { return; }
    let count = p.n * p.hw;
    let mu = mean[ch];
    let is = inv_std[ch];
    var a = 0.0;
    var b = 0.0;
    for (var j = lid.x; j < count; j = j + WG) {
        let i = at(ch, j);
        let g = dy[i];
        a = a + g * (x[i] - mu) * is;
        b = b + g;
    }
    let sa = wg_sum(lid.x, a);
    let sb = wg_sum(lid.x, b);
    if lid.x == 0u {
        sum_dy_xhat[ch] = sa;
        sum_dy[ch] = sb;
    }
}

// dx = gamma * inv_std * (dy - [train] (mean(dy) + xhat * mean(dy * xhat))).
@compute @workgroup_size(256)
fn bn_bwd_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ch = (i / p.hw) % p.c;
    var g = dy[i];
    if (p.flags & 4u) != 0u {
        let count = f32(p.n * p.hw);
        let xhat = (x[i] - mean[ch]) * inv_std[ch];
        g = g - sum_dy_in[ch] / count - xhat * sum_dy_xhat_in[ch] / count;
    }
    var scale = inv_std[ch];
    if (p.flags & 1u) != 0u { scale = scale * gamma[ch]; }
    y[i] = g * scale;
}
