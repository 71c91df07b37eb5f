// Depthwise convolution over [n, c, h, w] with weights [c, 1, k, k] (one filter per channel,
// no bias), and both gradients. Direct loops: one thread per output (forward) or per input
// (data gradient, gathering from the outputs whose window covers it, so no atomics); the
// weight gradient uses one workgroup per (channel, tap), reducing over n * oh * ow.

struct Params {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    k: u32,
    stride: u32,
    pad: u32,
    dil: u32,
    oh: u32,
    ow: u32,
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wt: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// y[n, c, oy, ox] = sum over taps inside the input of w[c, tap] * x[n, c, iy, ix].
@compute @workgroup_size(256)
fn dw_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let plane = i / (p.oh * p.ow);
    let o = i % (p.oh * p.ow);
    let oy = o / p.ow;
    let ox = o % p.ow;
    let ch = plane % p.c;
    var acc = 0.0;
    for (var ky = 0u; ky < p.k; ky = ky + 1u) {
        let iy = i32(oy * p.stride + ky * p.dil) - i32(p.pad);
        if iy < 0 || iy >= i32(p.h) { continue; }
        for (var kx = 0u; kx < p.k; kx = kx + 1u) {
            let ix = i32(ox * p.stride + kx * p.dil) - i32(p.pad);
            if ix < 0 || ix >= i32(p.w) { continue; }
            acc = acc + wt[(ch * p.k + ky) * p.k + kx] * x[(plane * p.h + u32(iy)) * p.w + u32(ix)];
        }
    }
    out[i] = acc;
}

// dx[n, c, iy, ix] = sum over the taps (ky, kx) and outputs (oy, ox) with
// oy * stride + ky * dil - pad = iy (and the same along x) of w[c, tap] * dy[n, c, oy, ox].
@compute @workgroup_size(256)
fn dw_bwd_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let plane = i / (p.h * p.w);
    let at = i % (p.h * p.w);
    let iy = i32(at / p.w);
    let ix = i32(at % p.w);
    let ch = plane % p.c;
    let s = i32(p.stride);
    var acc = 0.0;
    for (var ky = 0u; ky < p.k; ky = ky + 1u) {
        let ty = iy + i32(p.pad) - i32(ky * p.dil);
        if ty < 0 || ty % s != 0 || ty / s >= i32(p.oh) { continue; }
        for (var kx = 0u; kx < p.k; kx = kx + 1u) {
            let tx = ix + i32(p.pad) - i32(kx * p.dil);
            if tx < 0 || tx % s != 0 || tx / s >= i32(p.ow) { continue; }
            let o = (plane * p.oh + u32(ty / s)) * p.ow + u32(tx / s);
            acc = acc + wt[(ch * p.k + ky) * p.k + kx] * dy[o];
        }
    }
    out[i] = acc;
}

// dw[c, tap]: one workgroup per (channel, tap), threads striding over n * oh * ow.
@compute @workgroup_size(256)
fn dw_bwd_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = group_index(wid, nwg);
    let kk = p.k * p.k;
    // Uniform across the workgroup, so the early return keeps the barriers uniform.
    if g >= p.c * kk { return; }
    let ch = g / kk;
    let ky = (g % kk) / p.k;
    let kx = g % p.k;
    let per = p.oh * p.ow;
    var acc = 0.0;
    for (var j = lid.x; j < p.n * per; j = j + WG) {
        let nn = j / per;
        let o = j % per;
        let iy = i32((o / p.ow) * p.stride + ky * p.dil) - i32(p.pad);
        let ix = i32((o % p.ow) * p.stride + kx * p.dil) - i32(p.pad);
        if iy < 0 || iy >= i32(p.h) || ix < 0 || ix >= i32(p.w) { continue; }
        let plane = nn * p.c + ch;
        acc = acc + dy[plane * per + o] * x[(plane * p.h + u32(iy)) * p.w + u32(ix)];
    }
    let total = wg_sum(lid.x, acc);
    if lid.x == 0u { out[g] = total; }
}
