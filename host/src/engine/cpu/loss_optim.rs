//! Softmax losses and the optimizer steps.

use super::Cpu;
use crate::engine::backend::{AdamStep, SgdStep};

/// Writes `softmax(z)` into `p` and returns `log(sum(exp(z)))`, both computed stably.
fn softmax_into(z: &[f32], p: &mut [f32]) -> f64 {
    let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = 0f64;
    for (p, &z) in p.iter_mut().zip(z) {
        *p = (z - max).exp();
        total += *p as f64;
    }
    let inv = (1.0 / total) as f32;
    p.iter_mut().for_each(|p| *p *= inv);
    max as f64 + total.ln()
}

/// `([1] mean loss, [rows, classes] gradient of the mean loss)` with label smoothing.
pub(super) fn softmax_xent(
    logits: &[f32],
    labels: &[f32],
    rows: usize,
    classes: usize,
    smoothing: f32,
) -> (Vec<f32>, Vec<f32>) {
    debug_assert_eq!(logits.len(), rows * classes);
    debug_assert_eq!(labels.len(), rows);
    let mut grad = vec![0.0; rows * classes];
    let mut loss = 0f64;
    let off = smoothing / classes as f32;
    let on = 1.0 - smoothing + off;
    let inv_rows = 1.0 / rows.max(1) as f32;
    for r in 0..rows {
        let z = &logits[r * classes..][..classes];
        let gr = &mut grad[r * classes..][..classes];
        let lse = softmax_into(z, gr);
        let label = labels[r] as usize;
        // -sum_j t_j log p_j = lse - sum_j t_j z_j, since the targets sum to 1.
        let mut tz = 0f64;
        for (j, (g, &z)) in gr.iter_mut().zip(z).enumerate() {
            let t = if j == label { on } else { off };
            tz += t as f64 * z as f64;
            *g = (*g - t) * inv_rows;
        }
        loss += lse - tz;
    }
    (vec![(loss / rows.max(1) as f64) as f32], grad)
}

/// `[rows, k]` row-wise softmax.
pub(super) fn softmax_rows(x: &[f32], rows: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * k);
    let mut p = vec![0.0; rows * k];
    if k > 0 {
        for (z, p) in x.chunks_exact(k).zip(p.chunks_exact_mut(k)) {
            softmax_into(z, p);
        }
    }
    p
}

/// Backward of the row softmax from its output: `dx = y * (dy - sum_j y_j dy_j)` per row
/// (the row dot accumulated in f64).
pub(super) fn softmax_rows_bwd(y: &[f32], dy: &[f32], rows: usize, k: usize) -> Vec<f32> {
    debug_assert_eq!(y.len(), rows * k);
    debug_assert_eq!(dy.len(), rows * k);
    let mut dx = vec![0.0; rows * k];
    if k > 0 {
        for ((y, dy), dx) in y.chunks_exact(k).zip(dy.chunks_exact(k)).zip(dx.chunks_exact_mut(k)) {
            let s = y.iter().zip(dy).map(|(&y, &d)| y as f64 * d as f64).sum::<f64>() as f32;
            for ((dx, &y), &d) in dx.iter_mut().zip(y).zip(dy) {
                *dx = y * (d - s);
            }
        }
    }
    dx
}

/// `([1] mean entropy of softmax rows, [rows, k] its gradient)`:
/// `dH/dz_j = -p_j (log p_j + H)` for each row, divided by `rows` for the mean.
pub(super) fn softmax_entropy(alpha: &[f32], rows: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    debug_assert_eq!(alpha.len(), rows * k);
    let mut grad = vec![0.0; rows * k];
    let mut total = 0f64;
    let inv_rows = 1.0 / rows.max(1) as f64;
    if k > 0 {
        for (z, g) in alpha.chunks_exact(k).zip(grad.chunks_exact_mut(k)) {
            let lse = softmax_into(z, g);
            let h: f64 = z.iter().zip(g.iter()).map(|(&z, &p)| -(p as f64) * (z as f64 - lse)).sum();
            for (g, &z) in g.iter_mut().zip(z) {
                let p = *g as f64;
                *g = (-p * (z as f64 - lse + h) * inv_rows) as f32;
            }
            total += h;
        }
    }
    (vec![(total * inv_rows) as f32], grad)
}

/// PyTorch SGD: `g = s * grad + wd * p; m = mu * m + g; p -= lr * m`.
pub(super) fn sgd_step(cpu: &Cpu, p: &mut [f32], grad: &[f32], mom: &mut [f32], grad_scale: f32, h: SgdStep) {
    debug_assert_eq!(p.len(), grad.len());
    debug_assert_eq!(p.len(), mom.len());
    let step = |p: &mut [f32], grad: &[f32], mom: &mut [f32]| {
        for ((p, &g), m) in p.iter_mut().zip(grad).zip(mom.iter_mut()) {
            let g = grad_scale * g + h.weight_decay * *p;
            *m = h.momentum * *m + g;
            *p -= h.lr * *m;
        }
    };
    in_chunks(cpu, p, grad, &mut [mom], |p, g, ms| step(p, g, &mut *ms[0]));
}

/// PyTorch Adam with L2 weight decay added to the gradient and bias correction at step `t`.
pub(super) fn adam_step(
    cpu: &Cpu,
    p: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    grad_scale: f32,
    h: AdamStep,
) {
    debug_assert_eq!(p.len(), grad.len());
    let t = h.t.max(1) as i32;
    let step_size = h.lr / (1.0 - h.beta1.powi(t));
    let bc2_sqrt = (1.0 - h.beta2.powi(t)).sqrt();
    let step = |p: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]| {
        for (((p, &g), m), v) in p.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = grad_scale * g + h.weight_decay * *p;
            *m = h.beta1 * *m + (1.0 - h.beta1) * g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
            *p -= step_size * *m / (v.sqrt() / bc2_sqrt + h.eps);
        }
    };
    in_chunks(cpu, p, grad, &mut [m, v], |p, g, ms| {
        let [m, v] = ms else { unreachable!("adam has two moment buffers") };
        step(p, g, m, v)
    });
}

/// One chunk of a parameter, of its gradient, and of each state buffer.
type Part<'a> = (&'a mut [f32], &'a [f32], Vec<&'a mut [f32]>);

/// Runs `f` over matching chunks of `p`, `grad` and every state buffer in `states`, in
/// parallel when the parameter is large.
fn in_chunks<const S: usize>(
    cpu: &Cpu,
    p: &mut [f32],
    grad: &[f32],
    states: &mut [&mut [f32]; S],
    f: impl Fn(&mut [f32], &[f32], &mut [&mut [f32]]) + Sync + Send,
) {
    use rayon::prelude::*;
    if p.len() < super::PAR_MIN_LEN || cpu.threads() == 1 {
        f(p, grad, &mut states[..]);
        return;
    }
    // Split every buffer at the same chunk boundaries.
    let chunk = super::PAR_CHUNK;
    let mut parts: Vec<Part<'_>> =
        p.chunks_mut(chunk).zip(grad.chunks(chunk)).map(|(p, g)| (p, g, Vec::with_capacity(S))).collect();
    for s in states.iter_mut() {
        for (part, sc) in parts.iter_mut().zip(s.chunks_mut(chunk)) {
            part.2.push(sc);
        }
    }
    cpu.pool.install(|| parts.par_iter_mut().for_each(|(p, g, s)| f(p, g, s)));
}
