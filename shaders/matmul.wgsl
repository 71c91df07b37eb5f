// Tiled GEMM: C[m, n] = op(A)[m, k] op(B)[k, n], row-major.
// A workgroup of 16 x 16 threads computes a 64 x 64 tile of C, each thread 4 x 4 outputs
// (rows ty + 16 i, columns tx + 16 j, so neighbouring threads read neighbouring workgroup
// words). K advances 16 at a time through workgroup memory. The third dispatch dimension
// splits K (split-K) when K is long: each split writes its own [m, n] slice and the host
// folds them with reduce.wgsl `sum_splits`; that keeps every loop under lavapipe's 65,535
// iterations and gives a real GPU enough workgroups when m * n is small.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    tiles_n: u32,
    tiles: u32,
    k_chunk: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// As[kk * BM + row], Bs[kk * BN + col].
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

fn load_a(row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k { return 0.0; }
    if p.trans_a != 0u { return a[kk * p.m + row]; }
    return a[row * p.k + kk];
}

fn load_b(kk: u32, col: u32) -> f32 {
    if kk >= p.k || col >= p.n { return 0.0; }
    if p.trans_b != 0u { return b[col * p.k + kk]; }
    return b[kk * p.n + col];
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
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
            // A tile: 64 rows x 16 k, k fastest; B tile: 16 k x 64 columns, column fastest.
            let am = e / BK;
            let ak = e % BK;
            let kk_a = k0 + ak;
            As[ak * BM + am] = select(0.0, load_a(row0 + am, kk_a), kk_a < k_end);
            let bk = e / BN;
            let bn = e % BN;
            let kk_b = k0 + bk;
            Bs[bk * BN + bn] = select(0.0, load_b(kk_b, col0 + bn), kk_b < k_end);
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

    let base = wid.z * p.m * p.n;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = row0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let col = col0 + tx + 16u * j;
            if row < p.m && col < p.n {
                c[base + row * p.n + col] = acc[i * 4u + j];
            }
        }
    }
}
