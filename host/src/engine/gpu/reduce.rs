//! `shaders/reduce.wgsl`: sums (dot products, squares, channel and column sums, split-K
//! folding) as two-stage workgroup tree reductions.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};

/// `shaders/reduce.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("reduce.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Most workgroups of a first-stage reduction: enough to fill a large GPU, few enough that
/// the second stage is one workgroup's short loop. Per-thread loops then run
/// `len / (256 * 256)` iterations, under 65,535 up to 4 G elements.
const MAX_PARTIAL_GROUPS: usize = 256;

/// What `partial_sum` accumulates.
#[derive(Clone, Copy)]
pub(super) enum SumOf {
    Product = 0,
    Square = 1,
}

/// The WGSL `Params` of reduce.wgsl (see there for what each entry point reads).
#[derive(Default)]
struct ReduceParams {
    len: usize,
    mode: usize,
    off: usize,
    n: usize,
    c: usize,
    hw: usize,
    alpha: f32,
    splits: usize,
}

impl ReduceParams {
    fn pack(self) -> Params {
        Params::new().u(self.len).u(self.mode).u(self.off).u(self.n).u(self.c).u(self.hw).f(self.alpha).u(self.splits)
    }
}

impl Gpu {
    fn rd(&self) -> &Shader {
        &self.shaders.reduce
    }

    /// Workgroups of the first stage for `len` elements.
    pub(super) fn partial_groups(len: usize) -> usize {
        groups_for(len).min(MAX_PARTIAL_GROUPS as u32) as usize
    }

    /// Writes partial sums of `x * y` (or `x * x`) to `partials[off .. off + partial_groups(len)]`.
    pub(super) fn partial_sum(&self, x: &GpuBuf, y: Option<&GpuBuf>, mode: SumOf, partials: &GpuBuf, off: usize) {
        if x.len == 0 {
            return;
        }
        let groups = Self::partial_groups(x.len);
        let y_buf = y.map_or(&x.buffer, |y| &y.buffer);
        let p = ReduceParams { len: x.len, mode: mode as usize, off, ..Default::default() }.pack();
        let bufs = [(1, &x.buffer), (2, y_buf), (3, &partials.buffer)];
        self.dispatch(self.rd(), "partial_sum", p, &bufs, (groups as u32, 1));
    }

    /// `out[index] = alpha * sum(partials[off .. off + count])`.
    pub(super) fn final_sum(
        &self,
        partials: &GpuBuf,
        off: usize,
        count: usize,
        alpha: f32,
        out: &GpuBuf,
        index: usize,
    ) {
        let p = ReduceParams { len: count, mode: index, off, alpha, ..Default::default() }.pack();
        self.dispatch(self.rd(), "final_sum", p, &[(4, &partials.buffer), (5, &out.buffer)], (1, 1));
    }

    /// `[c]`: `alpha * sum` over n and hw of a `[n, c, hw]` view, one workgroup per channel.
    pub(super) fn channel_sum_scaled(&self, x: &GpuBuf, n: usize, c: usize, hw: usize, alpha: f32) -> GpuBuf {
        debug_assert!(n * hw / 256 < 65_535, "channel_sum: {n} x {hw} values per channel is too many per thread");
        let out = self.alloc(c);
        let p = ReduceParams { n, c, hw, alpha, ..Default::default() }.pack();
        self.dispatch(self.rd(), "channel_sum", p, &[(1, &x.buffer), (5, &out.buffer)], (c.max(1) as u32, 1));
        out
    }

    /// `[len]`: sum of the `splits` stacked slices of `x` (`[splits, len]`).
    pub(super) fn sum_splits(&self, x: &GpuBuf, len: usize, splits: usize) -> GpuBuf {
        let out = self.alloc(len);
        let p = ReduceParams { len, splits, ..Default::default() }.pack();
        self.dispatch(self.rd(), "sum_splits", p, &[(1, &x.buffer), (5, &out.buffer)], (groups_for(len), 1));
        out
    }

    /// `[xs.len()]`: `sum_i xs[j][i] * y[i]` (or `xs[j][i]^2` without `y`), each in its own slot.
    pub(super) fn sums_per_buffer(&self, xs: &[&GpuBuf], y: Option<&GpuBuf>, mode: SumOf) -> GpuBuf {
        let offsets: Vec<usize> = xs
            .iter()
            .scan(0, |acc, x| {
                let off = *acc;
                *acc += Self::partial_groups(x.len);
                Some(off)
            })
            .collect();
        let total = offsets.last().map_or(0, |&o| o + Self::partial_groups(xs[xs.len() - 1].len));
        let partials = self.zeros_buf(total);
        for (x, &off) in xs.iter().zip(&offsets) {
            self.partial_sum(x, y, mode, &partials, off);
        }
        let out = self.zeros_buf(xs.len());
        for (j, (x, &off)) in xs.iter().zip(&offsets).enumerate() {
            self.final_sum(&partials, off, Self::partial_groups(x.len), 1.0, &out, j);
        }
        out
    }

    /// `[1]`: sum over all partial sums of every buffer.
    pub(super) fn sum_all(&self, xs: &[&GpuBuf], mode: SumOf) -> GpuBuf {
        let total: usize = xs.iter().map(|x| Self::partial_groups(x.len)).sum();
        let partials = self.zeros_buf(total);
        let mut off = 0;
        for x in xs {
            self.partial_sum(x, None, mode, &partials, off);
            off += Self::partial_groups(x.len);
        }
        let out = self.zeros_buf(1);
        self.final_sum(&partials, 0, total, 1.0, &out, 0);
        out
    }
}
