// Element-wise kernels: one thread per element, 256 threads per workgroup, workgroups folded
// into (x, y) so a dispatch never exceeds 65,535 per dimension (see kernel.rs `grid`).

struct Params {
    len: u32,
    // Element i belongs to channel (i / inner) % c (channel_affine, sample_scale, row bias).
    inner: u32,
    c: u32,
    // Index of the first used element of `s` (scale_by_elem, weighted sums).
    s_off: u32,
    alpha: f32,
    op: u32,
    // Bit 0: scale by s; bit 1: add b.
    flags: u32,
    // copy_channels: channels per sample in the source / destination, and the offsets.
    src_c: u32,
    src_off: u32,
    dst_c: u32,
    dst_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> yio: array<f32>;
@group(0) @binding(5) var<storage, read> b: array<f32>;

// op 0: alpha * x; 1: relu; 2: sign.
@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let v = x[i];
    var r = p.alpha * v;
    if p.op == 1u { r = max(v, 0.0); }
    if p.op == 2u { r = sign_pm1(v); }
    y[i] = r;
}

// x = a, s = b. op 0: a + b; 1: b * (a > 0) (relu backward); 2: b * (|a| < 1) (clipped STE).
@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let a = x[i];
    let d = s[i];
    var r = a + d;
    if p.op == 1u { r = select(0.0, d, a > 0.0); }
    if p.op == 2u { r = select(0.0, d, abs(a) < 1.0); }
    y[i] = r;
}

// yio += alpha * x.
@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    yio[i] = yio[i] + p.alpha * x[i];
}

// yio += s[s_off] * x (one term of a weighted sum whose weights live on the device).
@compute @workgroup_size(256)
fn axpy_elem(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    yio[i] = yio[i] + s[p.s_off] * x[i];
}

// y = x * s[s_off + ch] + b[ch] with ch = (i / inner) % c; flags choose s and b.
@compute @workgroup_size(256)
fn chan_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let ch = (i / p.inner) % p.c;
    var r = x[i];
    if (p.flags & 1u) != 0u { r = r * s[p.s_off + ch]; }
    if (p.flags & 2u) != 0u { r = r + b[ch]; }
    y[i] = r;
}

// y = alpha * x[i / inner] (global average pool backward).
@compute @workgroup_size(256)
fn broadcast(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    y[i] = p.alpha * x[i / p.inner];
}

// Copies (op 0) or adds (op 1) a [n, c, hw] block (len = n * c * hw, inner = hw, c = c) from
// channel src_off of a [n, src_c, hw] tensor into channel dst_off of a [n, dst_c, hw] tensor.
@compute @workgroup_size(256)
fn copy_channels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let hw = p.inner;
    let j = i % hw;
    let ch = (i / hw) % p.c;
    let n = i / (hw * p.c);
    let at = ((n * p.dst_c + p.dst_off + ch) * hw) + j;
    let v = x[((n * p.src_c + p.src_off + ch) * hw) + j];
    // op 1 adds into the destination (channel-slice gradients) instead of copying.
    if p.op == 1u {
        yio[at] = yio[at] + v;
    } else {
        yio[at] = v;
    }
}
