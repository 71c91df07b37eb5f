//! Optimizers over a `ParamStore`, running on the backend (PyTorch semantics).

use super::backend::{AdamStep, Backend, SgdStep};
use super::params::{ParamId, ParamStore};
use super::tape::Grads;

/// Global L2 norm of the gradients of `ids` (one scalar read back).
pub fn grad_norm<B: Backend>(b: &B, grads: &Grads<B>, ids: &[ParamId]) -> f32 {
    let bufs: Vec<&B::Buf> = ids.iter().filter_map(|&id| grads.get(id)).collect();
    if bufs.is_empty() {
        return 0.0;
    }
    b.download(&b.sum_squares(&bufs))[0].sqrt()
}

/// The factor that clips a gradient of norm `norm` to `max_norm` (PyTorch `clip_grad_norm_`).
pub fn clip_factor(norm: f32, max_norm: Option<f32>) -> f32 {
    match max_norm {
        Some(m) if norm > m => m / (norm + 1e-6),
        _ => 1.0,
    }
}

/// SGD with momentum and weight decay; one momentum buffer per parameter.
pub struct Sgd<B: Backend> {
    pub momentum: f32,
    pub weight_decay: f32,
    /// Indexed like the store's parameters; `None` until the parameter's first step.
    pub state: Vec<Option<B::Buf>>,
}

impl<B: Backend> Sgd<B> {
    pub fn new(n_params: usize, momentum: f32, weight_decay: f32) -> Self {
        Self { momentum, weight_decay, state: (0..n_params).map(|_| None).collect() }
    }

    /// Updates every parameter of `ids` that has a gradient.
    pub fn step(
        &mut self,
        b: &B,
        store: &mut ParamStore<B>,
        grads: &Grads<B>,
        ids: &[ParamId],
        lr: f32,
        grad_scale: f32,
    ) {
        let h = SgdStep { lr, momentum: self.momentum, weight_decay: self.weight_decay };
        for &id in ids {
            let Some(g) = grads.get(id) else { continue };
            let p = &mut store.params[id.0];
            let m = self.state[id.0].get_or_insert_with(|| b.zeros(b.len(&p.value)));
            b.sgd_step(&mut p.value, g, m, grad_scale, h);
        }
    }
}

/// Adam with L2 weight decay; first and second moment per parameter.
pub struct Adam<B: Backend> {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub t: u32,
    pub state: Vec<Option<(B::Buf, B::Buf)>>,
}

impl<B: Backend> Adam<B> {
    pub fn new(n_params: usize, beta1: f32, beta2: f32, weight_decay: f32) -> Self {
        Self { beta1, beta2, eps: 1e-8, weight_decay, t: 0, state: (0..n_params).map(|_| None).collect() }
    }

    pub fn step(&mut self, b: &B, store: &mut ParamStore<B>, grads: &Grads<B>, ids: &[ParamId], lr: f32) {
        self.t += 1;
        let h = AdamStep {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            t: self.t,
        };
        for &id in ids {
            let Some(g) = grads.get(id) else { continue };
            let p = &mut store.params[id.0];
            let (m, v) = self.state[id.0].get_or_insert_with(|| (b.zeros(b.len(&p.value)), b.zeros(b.len(&p.value))));
            b.adam_step(&mut p.value, g, m, v, 1.0, h);
        }
    }
}
