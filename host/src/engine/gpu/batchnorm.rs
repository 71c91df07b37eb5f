//! `shaders/batchnorm.wgsl`: batch-norm statistics, normalisation and gradients.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::{BnGrads, BnMode, BnOut, ChanGeom};

/// `shaders/batchnorm.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("batchnorm.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

const HAS_GAMMA: u32 = 1;
const HAS_BETA: u32 = 2;
const TRAIN: u32 = 4;

/// Params in the order of the WGSL struct: n, c, hw, eps, momentum, flags, len.
fn params(g: ChanGeom, eps: f32, momentum: f32, flags: u32) -> Params {
    let mut p = Params::new().u(g.n).u(g.c).u(g.hw).f(eps).f(momentum);
    p.0.push(flags);
    p.u(g.len())
}

impl Gpu {
    fn bn(&self) -> &Shader {
        &self.shaders.batchnorm
    }

    pub(super) fn bn_forward(
        &self,
        x: &GpuBuf,
        gamma: Option<&GpuBuf>,
        beta: Option<&GpuBuf>,
        mode: BnMode<'_, Gpu>,
        eps: f32,
        g: ChanGeom,
    ) -> BnOut<Gpu> {
        let mean = self.alloc(g.c);
        let inv_std = self.alloc(g.c);
        match mode {
            BnMode::Train { running_mean, running_var, momentum } => {
                debug_assert!(g.n * g.hw / 256 < 65_535, "batch_norm: too many values per channel");
                let bufs = [
                    (1, &x.buffer),
                    (12, &mean.buffer),
                    (13, &inv_std.buffer),
                    (14, &running_mean.buffer),
                    (15, &running_var.buffer),
                ];
                self.dispatch(self.bn(), "bn_stats", params(g, eps, momentum, TRAIN), &bufs, (g.c as u32, 1));
            }
            BnMode::Eval { running_mean, running_var } => {
                let bufs =
                    [(7, &running_mean.buffer), (8, &running_var.buffer), (12, &mean.buffer), (13, &inv_std.buffer)];
                self.dispatch(self.bn(), "bn_eval_stats", params(g, eps, 0.0, 0), &bufs, (groups_for(g.c), 1));
            }
        }
        let y = self.alloc(g.len());
        let flags = if gamma.is_some() { HAS_GAMMA } else { 0 } | if beta.is_some() { HAS_BETA } else { 0 };
        let bufs = [
            (1, &x.buffer),
            (3, &mean.buffer),
            (4, &inv_std.buffer),
            (5, gamma.map_or(&mean.buffer, |b| &b.buffer)),
            (6, beta.map_or(&mean.buffer, |b| &b.buffer)),
            (11, &y.buffer),
        ];
        self.dispatch(self.bn(), "bn_apply", params(g, eps, 0.0, flags), &bufs, (groups_for(g.len()), 1));
        BnOut { y, mean, inv_std }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn bn_backward(
        &self,
        x: &GpuBuf,
        dy: &GpuBuf,
        mean: &GpuBuf,
        inv_std: &GpuBuf,
        gamma: Option<&GpuBuf>,
        train: bool,
        g: ChanGeom,
    ) -> BnGrads<Gpu> {
        let sum_dy_xhat = self.alloc(g.c);
        let sum_dy = self.alloc(g.c);
        let bufs = [
            (1, &x.buffer),
            (2, &dy.buffer),
            (3, &mean.buffer),
            (4, &inv_std.buffer),
            (16, &sum_dy_xhat.buffer),
            (17, &sum_dy.buffer),
        ];
        self.dispatch(self.bn(), "bn_bwd_sums", params(g, 0.0, 0.0, 0), &bufs, (g.c as u32, 1));
        let dx = self.alloc(g.len());
        let flags = if gamma.is_some() { HAS_GAMMA } else { 0 } | if train { TRAIN } else { 0 };
        let bufs = [
            (1, &x.buffer),
            (2, &dy.buffer),
            (3, &mean.buffer),
            (4, &inv_std.buffer),
            (5, gamma.map_or(&mean.buffer, |b| &b.buffer)),
            (9, &sum_dy_xhat.buffer),
            (10, &sum_dy.buffer),
            (11, &dx.buffer),
        ];
        self.dispatch(self.bn(), "bn_bwd_dx", params(g, 0.0, 0.0, flags), &bufs, (groups_for(g.len()), 1));
        match gamma {
            Some(_) => BnGrads { dx, dgamma: Some(sum_dy_xhat), dbeta: Some(sum_dy) },
            None => BnGrads { dx, dgamma: None, dbeta: None },
        }
    }
}
