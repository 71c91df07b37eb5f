// XNOR-Net weight binarization of latent weights [c_out, c_in, kk] (bnas-method.md,
// "Binarization"). Centring is over the input-channel axis: one thread per (filter, tap)
// walks its c_in values. Per-filter means use one workgroup per filter.

struct Params {
    c_out: u32,
    c_in: u32,
    kk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> centered_in: array<f32>;
@group(0) @binding(3) var<storage, read> beta_in: array<f32>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read_write> centered: array<f32>;
@group(0) @binding(6) var<storage, read_write> signs: array<f32>;
@group(0) @binding(7) var<storage, read_write> beta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dw: array<f32>;

// centered = clamp(w - mean over c_in, -1, 1); signs = sign(centered).
@compute @workgroup_size(256)
fn center(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = index(wid, nwg, lid);
    if t >= p.c_out * p.kk { return; }
    let co = t / p.kk;
    let r = t % p.kk;
    var acc = 0.0;
    for (var ci = 0u; ci < p.c_in; ci = ci + 1u) { acc = acc + w[(co * p.c_in + ci) * p.kk + r]; }
    // A depthwise filter (c_in = 1) has no channel axis to centre over: clamp only.
    let mean = select(acc / f32(p.c_in), 0.0, p.c_in == 1u);
    for (var ci = 0u; ci < p.c_in; ci = ci + 1u) {
        let i = (co * p.c_in + ci) * p.kk + r;
        let c = clamp(w[i] - mean, -1.0, 1.0);
        centered[i] = c;
        signs[i] = sign_pm1(c);
    }
}

// beta[co] = mean |centered| over the filter's c_in * kk values.
@compute @workgroup_size(256)
fn filter_beta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let co = group_index(wid, nwg);
    if co >= p.c_out { return; }
    let n = p.c_in * p.kk;
    var acc = 0.0;
    for (var j = lid.x; j < n; j = j + WG) { acc = acc + abs(centered_in[co * n + j]); }
    let total = wg_sum(lid.x, acc);
    if lid.x == 0u { beta[co] = total / f32(n); }
}

// dW = (beta 1{|W| <= 1} g + sign(W) mean(sign(W) g)) (1 - 1/c_in) n, n = c_in * kk: the
// reference's gradient, whose factor n scales the binary weights' effective learning rate.
@compute @workgroup_size(256)
fn binarize_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let co = group_index(wid, nwg);
    if co >= p.c_out { return; }
    let n = p.c_in * p.kk;
    var acc = 0.0;
    for (var j = lid.x; j < n; j = j + WG) {
        let i = co * n + j;
        acc = acc + sign_pm1(centered_in[i]) * g[i];
    }
    let mean_sg = wg_sum(lid.x, acc) / f32(n);
    let factor = select(1.0 - 1.0 / f32(p.c_in), 1.0, p.c_in == 1u) * f32(n);
    let b = beta_in[co];
    for (var j = lid.x; j < n; j = j + WG) {
        let i = co * n + j;
        let wv = centered_in[i];
        let keep = select(0.0, 1.0, abs(wv) <= 1.0);
        dw[i] = (b * keep * g[i] + sign_pm1(wv) * mean_sg) * factor;
    }
}
