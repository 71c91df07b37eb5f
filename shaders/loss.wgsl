// Row-wise softmax and its backward, label-smoothed softmax cross-entropy and softmax entropy over
// [rows, k] matrices: one workgroup per row, classes strided over 256 threads, max and sum
// by tree reduction in workgroup memory. The row values written to `row_out` are averaged
// by reduce.wgsl `final_sum`.

struct Params {
    rows: u32,
    k: u32,
    smoothing: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> row_out: array<f32>;
@group(0) @binding(5) var<storage, read> dy: array<f32>;

// (max, log of the sum of exp(x - max)) of row `r`.
fn log_sum_exp(r: u32, lid: u32) -> vec2<f32> {
    var m = -3.4028235e38;
    for (var j = lid; j < p.k; j = j + WG) { m = max(m, x[r * p.k + j]); }
    let row_max = wg_max(lid, m);
    var s = 0.0;
    for (var j = lid; j < p.k; j = j + WG) { s = s + exp(x[r * p.k + j] - row_max); }
    return vec2<f32>(row_max, log(wg_sum(lid, s)));
}

@compute @workgroup_size(256)
fn softmax_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    if r >= p.rows { return; }
    let lse = log_sum_exp(r, lid.x);
    for (var j = lid.x; j < p.k; j = j + WG) {
        y[r * p.k + j] = exp(x[r * p.k + j] - lse.x - lse.y);
    }
}

// Backward of the row softmax from its output y (bound as `x`):
// dx_j = y_j * (dy_j - sum_i y_i dy_i), written to `y`.
@compute @workgroup_size(256)
fn softmax_rows_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    if r >= p.rows { return; }
    var s = 0.0;
    for (var j = lid.x; j < p.k; j = j + WG) { s = s + x[r * p.k + j] * dy[r * p.k + j]; }
    let dot = wg_sum(lid.x, s);
    for (var j = lid.x; j < p.k; j = j + WG) {
        let i = r * p.k + j;
        y[i] = x[i] * (dy[i] - dot);
    }
}

// Loss of row r: -sum_j t_j log p_j with t_j = eps/k + (1 - eps) [j == label];
// gradient of the mean loss: (p_j - t_j) / rows.
@compute @workgroup_size(256)
fn xent_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    if r >= p.rows { return; }
    let lse = log_sum_exp(r, lid.x);
    let label = u32(labels[r]);
    let off = p.smoothing / f32(p.k);
    var loss = 0.0;
    for (var j = lid.x; j < p.k; j = j + WG) {
        let logp = x[r * p.k + j] - lse.x - lse.y;
        let t = off + select(0.0, 1.0 - p.smoothing, j == label);
        loss = loss - t * logp;
        y[r * p.k + j] = (exp(logp) - t) / f32(p.rows);
    }
    let total = wg_sum(lid.x, loss);
    if lid.x == 0u { row_out[r] = total; }
}

// Entropy H of softmax(row r) and its gradient / rows: dH/dx_j = -p_j (log p_j + H).
@compute @workgroup_size(256)
fn entropy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = group_index(wid, nwg);
    if r >= p.rows { return; }
    let lse = log_sum_exp(r, lid.x);
    var h = 0.0;
    for (var j = lid.x; j < p.k; j = j + WG) {
        let logp = x[r * p.k + j] - lse.x - lse.y;
        h = h - exp(logp) * logp;
    }
    let row_h = wg_sum(lid.x, h);
    for (var j = lid.x; j < p.k; j = j + WG) {
        let logp = x[r * p.k + j] - lse.x - lse.y;
        y[r * p.k + j] = -exp(logp) * (logp + row_h) / f32(p.rows);
    }
    if lid.x == 0u { row_out[r] = row_h; }
}
