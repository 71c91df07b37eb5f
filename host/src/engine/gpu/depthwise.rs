//! `shaders/depthwise.wgsl`: depthwise convolution (the depthwise half of a binary separable
//! conv) and both gradients, as direct loops.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::ConvGeom;

/// `shaders/depthwise.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("depthwise.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Params in the order of the WGSL struct: n, c, h, w, k, stride, pad, dil, oh, ow, len.
fn params(g: ConvGeom, len: usize) -> Params {
    Params::new().u(g.n).u(g.c_in).u(g.h).u(g.w).u(g.k).u(g.stride).u(g.pad).u(g.dil).u(g.out_h()).u(g.out_w()).u(len)
}

impl Gpu {
    pub(super) fn depthwise_fwd(&self, x: &GpuBuf, w: &GpuBuf, g: ConvGeom) -> GpuBuf {
        let y = self.alloc(g.out_len());
        let bufs = [(1, &x.buffer), (2, &w.buffer), (4, &y.buffer)];
        self.dispatch(&self.shaders.depthwise, "dw_fwd", params(g, g.out_len()), &bufs, (groups_for(g.out_len()), 1));
        y
    }

    pub(super) fn depthwise_bwd_data(&self, dy: &GpuBuf, w: &GpuBuf, g: ConvGeom) -> GpuBuf {
        let dx = self.alloc(g.in_len());
        let bufs = [(2, &w.buffer), (3, &dy.buffer), (4, &dx.buffer)];
        let groups = (groups_for(g.in_len()), 1);
        self.dispatch(&self.shaders.depthwise, "dw_bwd_data", params(g, g.in_len()), &bufs, groups);
        dx
    }

    pub(super) fn depthwise_bwd_weight(&self, dy: &GpuBuf, x: &GpuBuf, g: ConvGeom) -> GpuBuf {
        let len = g.c_in * g.k * g.k;
        let dw = self.alloc(len);
        let bufs = [(1, &x.buffer), (3, &dy.buffer), (4, &dw.buffer)];
        self.dispatch(&self.shaders.depthwise, "dw_bwd_weight", params(g, len), &bufs, (len as u32, 1));
        dw
    }
}
