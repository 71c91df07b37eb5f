// 3x3 pooling with padding 1 over [n, c, h, w], one thread per output (forward) or per input
// (backward, gathering from the at most 3x3 windows that cover it, so no atomics).
// Max: the first maximum in row-major window order, padded cells skipped.
// Average: divided by the number of non-padded cells.

struct Params {
    nc: u32,
    h: u32,
    w: u32,
    stride: u32,
    oh: u32,
    ow: u32,
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Flat index (within the plane) of the first maximum of window (oy, ox) of plane `plane`.
fn argmax(plane: u32, oy: u32, ox: u32) -> u32 {
    var best = 0.0;
    var best_at = 0xffffffffu;
    for (var kh = 0u; kh < 3u; kh = kh + 1u) {
        let iy = i32(oy * p.stride + kh) - 1;
        if iy < 0 || iy >= i32(p.h) { continue; }
        for (var kw = 0u; kw < 3u; kw = kw + 1u) {
            let ix = i32(ox * p.stride + kw) - 1;
            if ix < 0 || ix >= i32(p.w) { continue; }
            let at = u32(iy) * p.w + u32(ix);
            let v = x[plane * p.h * p.w + at];
            if best_at == 0xffffffffu || v > best {
                best = v;
                best_at = at;
            }
        }
    }
    return best_at;
}

fn window_count(oy: u32, ox: u32) -> f32 {
    let y0 = max(i32(oy * p.stride) - 1, 0);
    let y1 = min(i32(oy * p.stride) + 1, i32(p.h) - 1);
    let x0 = max(i32(ox * p.stride) - 1, 0);
    let x1 = min(i32(ox * p.stride) + 1, i32(p.w) - 1);
    return f32((y1 - y0 + 1) * (x1 - x0 + 1));
}

@compute @workgroup_size(256)
fn max_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let plane = i / (p.oh * p.ow);
    let o = i % (p.oh * p.ow);
    y[i] = x[plane * p.h * p.w + argmax(plane, o / p.ow, o % p.ow)];
}

@compute @workgroup_size(256)
fn avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let plane = i / (p.oh * p.ow);
    let o = i % (p.oh * p.ow);
    let oy = o / p.ow;
    let ox = o % p.ow;
    var acc = 0.0;
    for (var kh = 0u; kh < 3u; kh = kh + 1u) {
        let iy = i32(oy * p.stride + kh) - 1;
        if iy < 0 || iy >= i32(p.h) { continue; }
        for (var kw = 0u; kw < 3u; kw = kw + 1u) {
            let ix = i32(ox * p.stride + kw) - 1;
            if ix < 0 || ix >= i32(p.w) { continue; }
            acc = acc + x[(plane * p.h + u32(iy)) * p.w + u32(ix)];
        }
    }
    y[i] = acc / window_count(oy, ox);
}

// Output rows (or columns) whose window covers input coordinate `c`: [lo, hi] (empty if lo > hi).
fn covering(c: u32, out_extent: u32) -> vec2<i32> {
    let s = i32(p.stride);
    let lo = (i32(c) - 1 + s - 1) / s;
    let hi = min((i32(c) + 1) / s, i32(out_extent) - 1);
    return vec2<i32>(max(lo, 0), hi);
}

// One thread per input element: dx = sum of dy over the windows whose first maximum it is
// (max) or that contain it, divided by their counts (average). `p.len` = input length.
fn pool_bwd(i: u32, is_max: bool) -> f32 {
    let plane = i / (p.h * p.w);
    let at = i % (p.h * p.w);
    let ry = covering(at / p.w, p.oh);
    let rx = covering(at % p.w, p.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy = oy + 1) {
        for (var ox = rx.x; ox <= rx.y; ox = ox + 1) {
            let o = (plane * p.oh + u32(oy)) * p.ow + u32(ox);
            if is_max {
                if argmax(plane, u32(oy), u32(ox)) == at { acc = acc + dy[o]; }
            } else {
                acc = acc + dy[o] / window_count(u32(oy), u32(ox));
            }
        }
    }
    return acc;
}

@compute @workgroup_size(256)
fn max_pool_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    y[i] = pool_bwd(i, true);
}

@compute @workgroup_size(256)
fn avg_pool_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    y[i] = pool_bwd(i, false);
}
