// Optimizer steps in place, one thread per parameter, PyTorch semantics. The gradient is
// first multiplied by grad_scale (gradient-norm clipping), then weight decay is added as L2.

struct Params {
    len: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    grad_scale: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    // Adam: lr / (1 - beta1^t) and sqrt(1 - beta2^t), computed on the host in f64.
    step_size: f32,
    sqrt_bias_correction2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

// g += wd * p; m = mu * m + g; p -= lr * m.
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let g = grad[i] * p.grad_scale + p.weight_decay * param[i];
    let mi = p.momentum * m[i] + g;
    m[i] = mi;
    param[i] = param[i] - p.lr * mi;
}

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps).
@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wid, nwg, lid);
    if i >= p.len { return; }
    let g = grad[i] * p.grad_scale + p.weight_decay * param[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] - p.step_size * mi / (sqrt(vi) / p.sqrt_bias_correction2 + p.eps);
}
