// GEMM: C[m, n] = op(A)[m, k] op(B)[k, n], row-major, op a transpose or not; the tiles are
// gemm.wgsl's.

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

// gemm.wgsl's operands and output (one mode).
fn load_a(mode: u32, row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k { return 0.0; }
    if p.trans_a != 0u { return a[kk * p.m + row]; }
    return a[row * p.k + kk];
}

fn load_b(mode: u32, kk: u32, col: u32) -> f32 {
    if kk >= p.k || col >= p.n { return 0.0; }
    if p.trans_b != 0u { return b[col * p.k + kk]; }
    return b[kk * p.n + col];
}

fn store(mode: u32, z: u32, row: u32, col: u32, v: f32) {
    if row < p.m && col < p.n {
        c[z * p.m * p.n + row * p.n + col] = v;
    }
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    gemm(0u, wid, nwg, lid);
}
