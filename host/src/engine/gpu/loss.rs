//! `shaders/loss.wgsl`: row softmax and its backward, label-smoothed cross-entropy, softmax entropy.

use super::kernel::{wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};

/// `shaders/loss.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("loss.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

fn params(rows: usize, k: usize, smoothing: f32) -> Params {
    Params::new().u(rows).u(k).f(smoothing)
}

impl Gpu {
    pub(super) fn softmax(&self, x: &GpuBuf, rows: usize, k: usize) -> GpuBuf {
        let y = self.alloc(rows * k);
        let bufs = [(1, &x.buffer), (3, &y.buffer)];
        self.dispatch(&self.shaders.loss, "softmax_rows", params(rows, k, 0.0), &bufs, (rows as u32, 1));
        y
    }

    /// `dx = y * (dy - sum_j y_j dy_j)` per row, from the softmax output `y`.
    pub(super) fn softmax_bwd(&self, y: &GpuBuf, dy: &GpuBuf, rows: usize, k: usize) -> GpuBuf {
        let dx = self.alloc(rows * k);
        let bufs = [(1, &y.buffer), (3, &dx.buffer), (5, &dy.buffer)];
        self.dispatch(&self.shaders.loss, "softmax_rows_bwd", params(rows, k, 0.0), &bufs, (rows as u32, 1));
        dx
    }

    /// (`[1]` mean over rows, `[rows, k]` gradient of that mean) for `xent_rows` (with
    /// labels) or `entropy_rows`.
    pub(super) fn row_loss(
        &self,
        entry: &'static str,
        x: &GpuBuf,
        labels: Option<&GpuBuf>,
        rows: usize,
        k: usize,
        smoothing: f32,
    ) -> (GpuBuf, GpuBuf) {
        let grad = self.alloc(rows * k);
        let per_row = self.alloc(rows);
        let mut bufs = vec![(1, &x.buffer), (3, &grad.buffer), (4, &per_row.buffer)];
        if let Some(labels) = labels {
            bufs.push((2, &labels.buffer));
        }
        self.dispatch(&self.shaders.loss, entry, params(rows, k, smoothing), &bufs, (rows as u32, 1));
        let mean = self.alloc(1);
        self.final_sum(&per_row, 0, rows, 1.0 / rows as f32, &mean, 0);
        (mean, grad)
    }
}
