// Inference of a packed bnas model (bnas-device's format) over a batch: every tensor lives in
// the model's own arena plan, one arena per image (`arena[img * a_stride + offset]`), so a
// concat's parts are channel slices of their root (CHW contiguous) as on the device.
// Binary convs pack the thresholded input signs 32 channels per u32 word (LSB first, padded
// channels 0) into `bits` [n, h*w, words], then count XNOR agreements over the valid taps.
// One thread per output element; sums run in the device kernels' order (bnas-device
// src/kernels), each product rounded before it is added (`product`), so every output is
// bit-identical to the device's.

struct Params {
    n: u32,
    len: u32,        // n * elements per image: the thread count
    a_stride: u32,   // arena words per image
    x_off: u32,
    x2_off: u32,     // second input of add
    out_off: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
    dil: u32,
    words: u32,
    flags: u32,      // bit 0: ReLU, bit 1: bias (conv) / affine (input)
    w_off: u32,      // constant offsets (words): weights / scale
    b_off: u32,      // bias
    s_off: u32,      // scale of a binary conv; the 1 / n table of a pool
    f_off: u32,      // flip
    t_off: u32,      // threshold
    zero: u32,       // always 0, unknown to the compiler: see `product`
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> consts: array<u32>;
@group(0) @binding(2) var<storage, read_write> arena: array<f32>;
@group(0) @binding(3) var<storage, read_write> bits: array<u32>;
@group(0) @binding(4) var<storage, read> pixels: array<u32>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;

fn cf(i: u32) -> f32 {
    return bitcast<f32>(consts[i]);
}

// a * b rounded to f32 on its own, as the device computes it before adding: the XOR with a
// runtime zero keeps the compiler from fusing the multiply into a following add (an FMA would
// round once and could move a value across a BN + sign threshold).
fn product(a: f32, b: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(a * b) ^ p.zero);
}

// ReLU as on the device: v > 0 ? v : +0.0.
fn relu(v: f32) -> f32 {
    return select(0.0, v, v > 0.0);
}

// Input tensor from u8 CHW pixels: pixel * scale[c] + bias[c], or the pixel as it is.
@compute @workgroup_size(256)
fn input_u8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let per = p.c_in * p.h * p.w;
    let img = i / per;
    let j = i % per;
    let px = f32((pixels[i / 4u] >> (8u * (i % 4u))) & 255u);
    var v = px;
    if (p.flags & 2u) != 0u {
        let c = j / (p.h * p.w);
        v = product(px, cf(p.w_off + c)) + cf(p.b_off + c);
    }
    arena[img * p.a_stride + p.out_off + j] = v;
}

// bit[c, pixel] = x[c, pixel] * flip[c] >= threshold[c], one thread per (image, pixel, word).
@compute @workgroup_size(256)
fn pack_signs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let hw = p.h * p.w;
    let img = i / (hw * p.words);
    let r = i % (hw * p.words);
    let pix = r / p.words;
    let wd = r % p.words;
    let base = img * p.a_stride + p.x_off + pix;
    var word = 0u;
    for (var b = 0u; b < 32u; b = b + 1u) {
        let c = wd * 32u + b;
        if c >= p.c_in { break; }
        if arena[base + c * hw] * cf(p.f_off + c) >= cf(p.t_off + c) {
            word = word | (1u << b);
        }
    }
    bits[i] = word;
}

// XNOR-popcount conv: s = sum over valid taps of (c_in - 2 * popcount(x ^ w)) (padded taps
// contribute 0; padding channels are 0 in both words), out = relu(f32(s) * scale[o]).
@compute @workgroup_size(256)
fn xnor_conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ohw = p.oh * p.ow;
    let img = i / (p.c_out * ohw);
    let o = (i / ohw) % p.c_out;
    let pp = i % ohw;
    let oy = pp / p.ow;
    let ox = pp % p.ow;
    let kk = p.k * p.k;
    var s = 0i;
    for (var t = 0u; t < kk; t = t + 1u) {
        let iy = i32(oy * p.stride + (t / p.k) * p.dil) - i32(p.pad);
        let ix = i32(ox * p.stride + (t % p.k) * p.dil) - i32(p.pad);
        if iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w) { continue; }
        let xb = (img * p.h * p.w + u32(iy) * p.w + u32(ix)) * p.words;
        let wb = p.w_off + (o * kk + t) * p.words;
        var differ = 0u;
        for (var wd = 0u; wd < p.words; wd = wd + 1u) {
            differ = differ + countOneBits(bits[xb + wd] ^ consts[wb + wd]);
        }
        s = s + i32(p.c_in) - 2i * i32(differ);
    }
    arena[img * p.a_stride + p.out_off + o * ohw + pp] = relu(f32(s) * cf(p.s_off + o));
}

// Full-precision conv: acc = bias, then += w * x over c, ky, kx ascending (valid taps).
@compute @workgroup_size(256)
fn conv_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ohw = p.oh * p.ow;
    let img = i / (p.c_out * ohw);
    let o = (i / ohw) % p.c_out;
    let pp = i % ohw;
    let oy = pp / p.ow;
    let ox = pp % p.ow;
    let kk = p.k * p.k;
    var acc = 0.0;
    if (p.flags & 2u) != 0u { acc = cf(p.b_off + o); }
    let xb = img * p.a_stride + p.x_off;
    for (var c = 0u; c < p.c_in; c = c + 1u) {
        for (var t = 0u; t < kk; t = t + 1u) {
            let iy = i32(oy * p.stride + (t / p.k) * p.dil) - i32(p.pad);
            let ix = i32(ox * p.stride + (t % p.k) * p.dil) - i32(p.pad);
            if iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w) { continue; }
            let wv = cf(p.w_off + (o * p.c_in + c) * kk + t);
            acc = acc + product(wv, arena[xb + (c * p.h + u32(iy)) * p.w + u32(ix)]);
        }
    }
    if (p.flags & 1u) != 0u { acc = relu(acc); }
    arena[img * p.a_stride + p.out_off + o * ohw + pp] = acc;
}

// out = x * scale[c] + bias[c] (BatchNorm, eval).
@compute @workgroup_size(256)
fn affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let hw = p.h * p.w;
    let per = p.c_in * hw;
    let img = i / per;
    let j = i % per;
    let c = j / hw;
    let v = arena[img * p.a_stride + p.x_off + j];
    arena[img * p.a_stride + p.out_off + j] = product(v, cf(p.w_off + c)) + cf(p.b_off + c);
}

// 3x3 pools, pad 1, over valid taps in row-major order: max (`v > m` replaces) or the sum
// times 1 / (number of valid taps), read from the table at s_off (flags bit 0: max).
@compute @workgroup_size(256)
fn pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ohw = p.oh * p.ow;
    let img = i / (p.c_in * ohw);
    let c = (i / ohw) % p.c_in;
    let pp = i % ohw;
    let cy = (pp / p.ow) * p.stride;
    let cx = (pp % p.ow) * p.stride;
    let xb = img * p.a_stride + p.x_off + c * p.h * p.w;
    let is_max = (p.flags & 1u) != 0u;
    var m = 0.0;
    var sum = 0.0;
    var count = 0u;
    for (var iy = max(cy, 1u) - 1u; iy < min(cy + 2u, p.h); iy = iy + 1u) {
        for (var ix = max(cx, 1u) - 1u; ix < min(cx + 2u, p.w); ix = ix + 1u) {
            let v = arena[xb + iy * p.w + ix];
            if count == 0u || v > m { m = v; }
            sum = sum + v;
            count = count + 1u;
        }
    }
    arena[img * p.a_stride + p.out_off + c * ohw + pp] = select(sum * cf(p.s_off + min(count, 9u)), m, is_max);
}

// out = a + b (out may be a or b: element-wise, so in place is safe).
@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let per = p.len / p.n;
    let base = (i / per) * p.a_stride + i % per;
    arena[base + p.out_off] = arena[base + p.x_off] + arena[base + p.x2_off];
}

@compute @workgroup_size(256)
fn zero(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let per = p.len / p.n;
    arena[(i / per) * p.a_stride + i % per + p.out_off] = 0.0;
}

// out[c] = (sum of x[c] in pixel order) * (1 / (h * w), rounded on the host), one thread per
// (image, channel).
@compute @workgroup_size(256)
fn global_avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let img = i / p.c_in;
    let c = i % p.c_in;
    let hw = p.h * p.w;
    let xb = img * p.a_stride + p.x_off + c * hw;
    var acc = 0.0;
    for (var j = 0u; j < hw; j = j + 1u) { acc = acc + arena[xb + j]; }
    arena[img * p.a_stride + p.out_off + c] = acc * cf(p.s_off);
}

// out[j] = (sum_i w[j, i] x[i], i ascending) + bias[j]; c_in holds the flattened length.
@compute @workgroup_size(256)
fn linear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let img = i / p.c_out;
    let j = i % p.c_out;
    let xb = img * p.a_stride + p.x_off;
    var acc = 0.0;
    for (var k = 0u; k < p.c_in; k = k + 1u) { acc = acc + product(cf(p.w_off + j * p.c_in + k), arena[xb + k]); }
    arena[img * p.a_stride + p.out_off + j] = acc + cf(p.b_off + j);
}

// Copies each image's logits tensor into the compact [n, classes] output.
@compute @workgroup_size(256)
fn gather_logits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    logits[i] = arena[(i / p.c_out) * p.a_stride + p.x_off + i % p.c_out];
}
