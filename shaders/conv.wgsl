// 2-D convolution (forward, data gradient, weight gradient) as implicit GEMM through
// gemm.wgsl's tiles (64 x 64, 16 x 16 threads with 4 x 4 outputs each, K in steps of 16
// through workgroup memory). Implicit rather than im2col + GEMM: the gathered operand is
// built tile by tile in workgroup memory instead of materialising a k*k times larger im2col
// buffer in device memory (memory the supernet, with its 4 convs per edge, cannot spare, and
// bandwidth a GEMM would then spend reading it back). Padded taps load 0.
//
//   forward      C[c_out, n*oh*ow]     = W[c_out, c_in*k*k] . X~[c_in*k*k, n*oh*ow]
//   data grad    C[c_in,  n*h*w]       = W~[c_in, c_out*k*k] . dY~[c_out*k*k, n*h*w]
//   weight grad  C[c_out, c_in*k*k]    = dY[c_out, n*oh*ow] . X~[n*oh*ow, c_in*k*k]
//
// The data gradient gathers (an input pixel collects the output taps that read it, keeping
// only those on the stride grid), so no atomics are needed. The weight gradient's K is the
// whole batch, so it is split across the third dispatch dimension (split-K) and folded by
// reduce.wgsl `sum_splits`; the others split only when K exceeds one loop's bound.

struct Params {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    ksz: u32,
    stride: u32,
    pad: u32,
    dil: u32,
    oh: u32,
    ow: u32,
    // The GEMM view.
    m: u32,
    cols: u32,
    k: u32,
    tiles_n: u32,
    tiles: u32,
    k_chunk: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// forward / data grad: the weights; weight grad: dY.
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
// forward / weight grad: X; data grad: dY.
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const FWD: u32 = 0u;
const BWD_DATA: u32 = 1u;
const BWD_WEIGHT: u32 = 2u;

// X[ni, ci, oy * stride - pad + kh * dil, ox * stride - pad + kw * dil], 0 when padded.
fn load_x(ni: u32, ci: u32, oy: u32, ox: u32, kh: u32, kw: u32) -> f32 {
    let iy = i32(oy * p.stride + kh * p.dil) - i32(p.pad);
    let ix = i32(ox * p.stride + kw * p.dil) - i32(p.pad);
    if iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w) { return 0.0; }
    return src_b[((ni * p.c_in + ci) * p.h + u32(iy)) * p.w + u32(ix)];
}

fn load_a(mode: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k { return 0.0; }
    let taps = p.ksz * p.ksz;
    if mode == FWD {
        return src_a[row * p.k + kk];
    }
    if mode == BWD_DATA {
        // W~[ci, (co, r)] = W[co, ci, r].
        return src_a[((kk / taps) * p.c_in + row) * taps + kk % taps];
    }
    // dY[co, (ni, pix)].
    let pixels = p.oh * p.ow;
    return src_a[((kk / pixels) * p.c_out + row) * pixels + kk % pixels];
}

fn load_b(mode: u32, kk: u32, col: u32) -> f32 {
    if kk >= p.k || col >= p.cols { return 0.0; }
    let taps = p.ksz * p.ksz;
    if mode == FWD {
        let ci = kk / taps;
        let r = kk % taps;
        let pixels = p.oh * p.ow;
        let pix = col % pixels;
        return load_x(col / pixels, ci, pix / p.ow, pix % p.ow, r / p.ksz, r % p.ksz);
    }
    if mode == BWD_DATA {
        let co = kk / taps;
        let r = kk % taps;
        let pixels = p.h * p.w;
        let ni = col / pixels;
        let pix = col % pixels;
        let ty = i32(pix / p.w + p.pad) - i32((r / p.ksz) * p.dil);
        let tx = i32(pix % p.w + p.pad) - i32((r % p.ksz) * p.dil);
        let s = i32(p.stride);
        if ty < 0 || tx < 0 || ty % s != 0 || tx % s != 0 { return 0.0; }
        let oy = u32(ty / s);
        let ox = u32(tx / s);
        if oy >= p.oh || ox >= p.ow { return 0.0; }
        return src_b[((ni * p.c_out + co) * p.oh + oy) * p.ow + ox];
    }
    // X~[(ni, pix), (ci, r)].
    let pixels = p.oh * p.ow;
    let ni = kk / pixels;
    let pix = kk % pixels;
    let r = col % taps;
    return load_x(ni, col / taps, pix / p.ow, pix % p.ow, r / p.ksz, r % p.ksz);
}

// C[row, col] to its place, with the bias in the forward (split 0 only). Split z of a split-K
// run writes its own [m, cols] slice.
fn store(mode: u32, z: u32, row: u32, col: u32, v: f32) {
    if row >= p.m || col >= p.cols { return; }
    let slice = z * p.m * p.cols;
    if mode == BWD_WEIGHT {
        out[slice + row * p.cols + col] = v;
        return;
    }
    var pixels = p.oh * p.ow;
    var r = v;
    if mode == BWD_DATA {
        pixels = p.h * p.w;
    } else if p.has_bias != 0u && z == 0u {
        r = v + bias[row];
    }
    out[slice + ((col / pixels) * p.m + row) * pixels + col % pixels] = r;
}

@compute @workgroup_size(256)
fn conv_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    gemm(FWD, wid, nwg, lid);
}

@compute @workgroup_size(256)
fn conv_bwd_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    gemm(BWD_DATA, wid, nwg, lid);
}

@compute @workgroup_size(256)
fn conv_bwd_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    gemm(BWD_WEIGHT, wid, nwg, lid);
}
