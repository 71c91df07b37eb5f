//! `shaders/conv.wgsl`: convolution forward and both gradients as implicit GEMM (see the
//! shader's header for the three GEMM views and why implicit rather than im2col).

use super::kernel::{wgsl_file, Params, Shader, WgslFile, GEMM};
use super::matmul::{SplitK, TILE};
use super::{Gpu, GpuBuf, GpuError};
use crate::engine::ConvGeom;

/// `shaders/conv.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("conv.wgsl"), GEMM];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Which product `conv.wgsl` computes.
#[derive(Clone, Copy)]
pub(super) enum ConvPass {
    Forward,
    BwdData,
    BwdWeight,
}

impl Gpu {
    /// Runs one conv pass; `a` and `b` are the GEMM operands' sources (weights / dY / X, as in
    /// the shader's table). Returns the output (`[n, c_out, oh, ow]`, `[n, c_in, h, w]` or
    /// `[c_out, c_in, k, k]`).
    pub(super) fn conv_pass(
        &self,
        pass: ConvPass,
        a: &GpuBuf,
        b: &GpuBuf,
        bias: Option<&GpuBuf>,
        g: ConvGeom,
    ) -> GpuBuf {
        let (oh, ow) = (g.out_h(), g.out_w());
        let taps = g.k * g.k;
        let (entry, m, cols, k) = match pass {
            ConvPass::Forward => ("conv_fwd", g.c_out, g.n * oh * ow, g.c_in * taps),
            ConvPass::BwdData => ("conv_bwd_data", g.c_in, g.n * g.h * g.w, g.c_out * taps),
            ConvPass::BwdWeight => ("conv_bwd_weight", g.c_out, g.c_in * taps, g.n * oh * ow),
        };
        let tiles_n = cols.div_ceil(TILE);
        let tiles = m.div_ceil(TILE) * tiles_n;
        // The weight gradient (small output, K = the whole batch) is split along K for
        // occupancy; the other two (batch-many columns) only past the loop bound.
        let split = match pass {
            ConvPass::BwdWeight => SplitK::plan(tiles, k),
            _ => SplitK::plan(usize::MAX, k),
        };
        let len = m * cols;
        let out = self.alloc(len * split.splits);
        let p = Params::new()
            .u(g.n)
            .u(g.c_in)
            .u(g.h)
            .u(g.w)
            .u(g.c_out)
            .u(g.k)
            .u(g.stride)
            .u(g.pad)
            .u(g.dil)
            .u(oh)
            .u(ow)
            .u(m)
            .u(cols)
            .u(k)
            .u(tiles_n)
            .u(tiles)
            .u(split.k_chunk)
            .u(usize::from(bias.is_some()));
        let bias_buf = bias.map_or(&a.buffer, |b| &b.buffer);
        let bufs = [(1, &a.buffer), (2, &b.buffer), (3, &out.buffer), (4, bias_buf)];
        self.dispatch(&self.shaders.conv, entry, p, &bufs, (tiles as u32, split.splits as u32));
        if split.splits == 1 {
            out
        } else {
            self.sum_splits(&out, len, split.splits)
        }
    }
}
