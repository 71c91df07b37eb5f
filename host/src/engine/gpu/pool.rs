//! `shaders/pool.wgsl`: 3x3 max and average pooling with padding 1, and their gradients.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::PoolGeom;

/// `shaders/pool.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("pool.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Params in the order of the WGSL struct: nc, h, w, stride, oh, ow, len.
fn params(g: PoolGeom, len: usize) -> Params {
    Params::new().u(g.n * g.c).u(g.h).u(g.w).u(g.stride).u(g.out_h()).u(g.out_w()).u(len)
}

impl Gpu {
    /// Forward pool: `entry` is `max_pool` or `avg_pool`.
    pub(super) fn pool_fwd(&self, entry: &'static str, x: &GpuBuf, g: PoolGeom) -> GpuBuf {
        let y = self.alloc(g.out_len());
        let bufs = [(1, &x.buffer), (3, &y.buffer)];
        self.dispatch(&self.shaders.pool, entry, params(g, g.out_len()), &bufs, (groups_for(g.out_len()), 1));
        y
    }

    /// Max-pool gradient, one thread per input gathering from the windows it is the first
    /// maximum of.
    pub(super) fn max_pool_grad(&self, x: &GpuBuf, dy: &GpuBuf, g: PoolGeom) -> GpuBuf {
        let dx = self.alloc(g.in_len());
        let bufs = [(1, &x.buffer), (2, &dy.buffer), (3, &dx.buffer)];
        self.dispatch(&self.shaders.pool, "max_pool_bwd", params(g, g.in_len()), &bufs, (groups_for(g.in_len()), 1));
        dx
    }

    pub(super) fn avg_pool_grad(&self, dy: &GpuBuf, g: PoolGeom) -> GpuBuf {
        let dx = self.alloc(g.in_len());
        // The shared gather code names x (for the max case): bind dy in its place.
        let bufs = [(1, &dy.buffer), (2, &dy.buffer), (3, &dx.buffer)];
        self.dispatch(&self.shaders.pool, "avg_pool_bwd", params(g, g.in_len()), &bufs, (groups_for(g.in_len()), 1));
        dx
    }
}
