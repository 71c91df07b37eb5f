//! `shaders/binarize.wgsl`: XNOR-Net weight binarization and the reference's gradient.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::BinWeights;

/// `shaders/binarize.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("binarize.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

fn params(c_out: usize, c_in: usize, kk: usize) -> Params {
    Params::new().u(c_out).u(c_in).u(kk)
}

impl Gpu {
    pub(super) fn binarize(&self, w: &GpuBuf, c_out: usize, c_in: usize, kk: usize) -> BinWeights<Gpu> {
        let centered = self.alloc(w.len);
        let sign = self.alloc(w.len);
        let beta = self.alloc(c_out);
        let sh = &self.shaders.binarize;
        let bufs = [(1, &w.buffer), (5, &centered.buffer), (6, &sign.buffer)];
        self.dispatch(sh, "center", params(c_out, c_in, kk), &bufs, (groups_for(c_out * kk), 1));
        let bufs = [(2, &centered.buffer), (7, &beta.buffer)];
        self.dispatch(sh, "filter_beta", params(c_out, c_in, kk), &bufs, (c_out as u32, 1));
        BinWeights { centered, sign, beta }
    }

    pub(super) fn binarize_grad(
        &self,
        centered: &GpuBuf,
        beta: &GpuBuf,
        g: &GpuBuf,
        c_out: usize,
        c_in: usize,
        kk: usize,
    ) -> GpuBuf {
        let dw = self.alloc(centered.len);
        let bufs = [(2, &centered.buffer), (3, &beta.buffer), (4, &g.buffer), (8, &dw.buffer)];
        self.dispatch(&self.shaders.binarize, "binarize_bwd", params(c_out, c_in, kk), &bufs, (c_out as u32, 1));
        dw
    }
}
