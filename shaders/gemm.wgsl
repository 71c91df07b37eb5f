// The tiled GEMM loop that matmul.wgsl and conv.wgsl share (the host appends this file to both):
// C[m, n] = A[m, k] B[k, n]. A workgroup of 16 x 16 threads computes a 64 x 64 tile of C, each
// thread 4 x 4 outputs (rows ty + 16 i, columns tx + 16 j, so that neighbouring threads read
// neighbouring workgroup words). K advances 16 at a time through workgroup memory. The third
// dispatch dimension splits K (split-K) when K is long: split z sums K from z * k_chunk, and
// its `store` writes a slice of its own, which the host folds with reduce.wgsl `sum_splits`;
// that keeps every loop under lavapipe's 65,535 iterations and gives a real GPU enough
// workgroups when m * n is small.
//
// The including shader defines `p` (with m, k, tiles_n, tiles and k_chunk) and, for its `mode`,
// load_a(mode, row, kk) and load_b(mode, kk, col) (0 outside A and B) and
// store(mode, z, row, col, v) (which drops what lies outside C).

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// As[kk * BM + row], Bs[kk * BN + col].
var<workgroup> As: array<f32, 1024>;
var<workgroup> Bs: array<f32, 1024>;

fn gemm(mode: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let tile = group_index(wid, nwg);
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
        for (var j = 0u; j < 4u; j = j + 1u) {
            store(mode, wid.z, row0 + ty + 16u * i, col0 + tx + 16u * j, acc[i * 4u + j]);
        }
    }
}
