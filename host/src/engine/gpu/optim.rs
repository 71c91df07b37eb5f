//! `shaders/optim.wgsl`: SGD (momentum, weight decay) and Adam steps, in place.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::{AdamStep, SgdStep};

/// `shaders/optim.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("optim.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

impl Gpu {
    pub(super) fn sgd(&self, p: &GpuBuf, grad: &GpuBuf, m: &GpuBuf, grad_scale: f32, h: SgdStep) {
        let params = Params::new().u(p.len).f(h.lr).f(h.momentum).f(h.weight_decay).f(grad_scale);
        let bufs = [(1, &grad.buffer), (2, &p.buffer), (3, &m.buffer)];
        self.dispatch(&self.shaders.optim, "sgd", params, &bufs, (groups_for(p.len), 1));
    }

    pub(super) fn adam(&self, p: &GpuBuf, grad: &GpuBuf, m: &GpuBuf, v: &GpuBuf, grad_scale: f32, h: AdamStep) {
        // PyTorch: step_size = lr / (1 - beta1^t), denom = sqrt(v) / sqrt(1 - beta2^t) + eps.
        let t = h.t.max(1) as i32;
        let bias_correction1 = 1.0 - (h.beta1 as f64).powi(t);
        let bias_correction2 = 1.0 - (h.beta2 as f64).powi(t);
        let params = Params::new()
            .u(p.len)
            .f(h.lr)
            .f(0.0)
            .f(h.weight_decay)
            .f(grad_scale)
            .f(h.beta1)
            .f(h.beta2)
            .f(h.eps)
            .f((h.lr as f64 / bias_correction1) as f32)
            .f(bias_correction2.sqrt() as f32);
        let bufs = [(1, &grad.buffer), (2, &p.buffer), (3, &m.buffer), (4, &v.buffer)];
        self.dispatch(&self.shaders.optim, "adam", params, &bufs, (groups_for(p.len), 1));
    }
}
