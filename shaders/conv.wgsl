// 2-D convolution (forward, data gradient, weight gradient) as implicit GEMM with the same
// 64 x 64 tiling as matmul.wgsl (16 x 16 threads, 4 x 4 outputs each, K in steps of 16
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

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

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

var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

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

// Where C[row, col] goes.
// Split z of a split-K run writes its own [m, cols] slice.
fn out_index(mode: u32, z: u32, row: u32, col: u32) -> u32 {
    let slice = z * p.m * p.cols;
    if mode == BWD_WEIGHT {
        return slice + row * p.cols + col;
    }
    var pixels = p.oh * p.ow;
    if mode == BWD_DATA { pixels = p.h * p.w; }
    return slice + ((col / pixels) * p.m + row) * pixels + col % pixels;
}

fn gemm(mode: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let tile = wid.x + wid.y * nwg.x;
    if tile >= p.tiles { return; }
    let row0 = (tile / p.tiles_n) * BM;
    let col0 = (tile % p.tiles_n) * BN;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let k_begin = wid.z * p.k_chunk;
    let k_end = min(k_begin + p.k_chunk, p.k);

    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) { acc[i] = 0.0; }

    for (var k0 = k_begin; k0 < k_end; k0 = k0 + BK) {
        for (var r = 0u; r < 4u; r = r + 1u) {
            let e = lid + 256u * r;
            let am = e / BK;
            let ak = e % BK;
            let kk_a = k0 + ak;
            As[ak * BM + am] = select(0.0, load_a(mode, row0 + am, kk_a), kk_a < k_end);
            let bk = e / BN;
            let bn = e % BN;
            let kk_b = k0 + bk;
            Bs[bk * BN + bn] = select(0.0, load_b(mode, kk_b, col0 + bn), kk_b < k_end);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i = i + 1u) {
                av[i] = As[kk * BM + ty + 16u * i];
                bv[i] = Bs[kk * BN + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i = i + 1u) {
                for (var j = 0u; j < 4u; j = j + 1u) {
                    acc[i * 4u + j] = acc[i * 4u + j] + av[i] * bv[j];
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + tx + 16u * j;
            if row < p.m && col < p.cols {
                var v = acc[i * 4u + j];
                if mode == FWD && p.has_bias != 0u && wid.z == 0u { v = v + bias[row]; }
                out[out_index(mode, wid.z, row, col)] = v;
            }
        }
    }
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
