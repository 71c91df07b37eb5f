//! `shaders/elementwise.wgsl`: maps, in-place updates, per-channel scaling, channel copies.

use super::kernel::{groups_for, wgsl_file, Params, Shader, WgslFile};
use super::{Gpu, GpuBuf, GpuError};

/// `shaders/elementwise.wgsl` as compiled (see `kernel::compose`).
pub(super) const WGSL: &[WgslFile] = &[wgsl_file!("elementwise.wgsl")];

pub(super) fn shader(device: &wgpu::Device) -> Result<Shader, GpuError> {
    Shader::new(device, WGSL)
}

/// Unary ops of the `unary` entry point.
#[derive(Clone, Copy)]
pub(super) enum Unary {
    Scale = 0,
    Relu = 1,
    Sign = 2,
}

/// Binary ops of the `binary` entry point.
#[derive(Clone, Copy)]
pub(super) enum Binary {
    Add = 0,
    ReluBwd = 1,
    SteBwd = 2,
}

/// Parameters in the order of the WGSL `Params`: len, inner, c, s_off, alpha, op, flags.
fn params(len: usize, inner: usize, c: usize, s_off: usize, alpha: f32, op: u32, flags: u32) -> Params {
    let mut p = Params::new().u(len).u(inner).u(c).u(s_off).f(alpha);
    p.0.extend([op, flags]);
    p
}

impl Gpu {
    fn ew(&self) -> &Shader {
        &self.shaders.elementwise
    }

    pub(super) fn unary(&self, x: &GpuBuf, op: Unary, alpha: f32) -> GpuBuf {
        let y = self.alloc(x.len);
        let p = params(x.len, 1, 1, 0, alpha, op as u32, 0);
        self.dispatch(self.ew(), "unary", p, &[(1, &x.buffer), (3, &y.buffer)], (groups_for(x.len), 1));
        y
    }

    pub(super) fn binary(&self, a: &GpuBuf, b: &GpuBuf, op: Binary) -> GpuBuf {
        debug_assert_eq!(a.len, b.len);
        let y = self.alloc(a.len);
        let p = params(a.len, 1, 1, 0, 0.0, op as u32, 0);
        self.dispatch(
            self.ew(),
            "binary",
            p,
            &[(1, &a.buffer), (2, &b.buffer), (3, &y.buffer)],
            (groups_for(a.len), 1),
        );
        y
    }

    /// `y += alpha * x`.
    pub(super) fn axpy_in_place(&self, y: &GpuBuf, alpha: f32, x: &GpuBuf) {
        debug_assert_eq!(y.len, x.len);
        let p = params(x.len, 1, 1, 0, alpha, 0, 0);
        self.dispatch(self.ew(), "axpy", p, &[(1, &x.buffer), (4, &y.buffer)], (groups_for(x.len), 1));
    }

    /// `y += s[i] * x`.
    pub(super) fn axpy_elem(&self, y: &GpuBuf, s: &GpuBuf, i: usize, x: &GpuBuf) {
        debug_assert_eq!(y.len, x.len);
        let p = params(x.len, 1, 1, i, 0.0, 0, 0);
        self.dispatch(
            self.ew(),
            "axpy_elem",
            p,
            &[(1, &x.buffer), (2, &s.buffer), (4, &y.buffer)],
            (groups_for(x.len), 1),
        );
    }

    /// `y[i] = x[i] * s[s_off + ch] + b[ch]` with `ch = (i / inner) % c`.
    pub(super) fn chan_affine(
        &self,
        x: &GpuBuf,
        s: Option<(&GpuBuf, usize)>,
        b: Option<&GpuBuf>,
        inner: usize,
        c: usize,
    ) -> GpuBuf {
        let y = self.alloc(x.len);
        let flags = u32::from(s.is_some()) | (u32::from(b.is_some()) << 1);
        let (s_buf, s_off) = s.map_or((&x.buffer, 0), |(s, off)| (&s.buffer, off));
        let b_buf = b.map_or(&x.buffer, |b| &b.buffer);
        let p = params(x.len, inner, c, s_off, 0.0, 0, flags);
        let bufs = [(1, &x.buffer), (2, s_buf), (5, b_buf), (3, &y.buffer)];
        self.dispatch(self.ew(), "chan_affine", p, &bufs, (groups_for(x.len), 1));
        y
    }

    /// `y[i] = alpha * x[i / inner]`, `len` outputs.
    pub(super) fn broadcast(&self, x: &GpuBuf, inner: usize, alpha: f32, len: usize) -> GpuBuf {
        let y = self.alloc(len);
        let p = params(len, inner, 1, 0, alpha, 0, 0);
        self.dispatch(self.ew(), "broadcast", p, &[(1, &x.buffer), (3, &y.buffer)], (groups_for(len), 1));
        y
    }

    /// Copies (or with `add`, adds) channels `[src_off, src_off + c)` of `src` `[n, src_c, hw]`
    /// into channels `[dst_off, dst_off + c)` of `dst` `[n, dst_c, hw]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn channel_block(
        &self,
        add: bool,
        src: &GpuBuf,
        dst: &GpuBuf,
        n: usize,
        c: usize,
        hw: usize,
        (src_c, src_off): (usize, usize),
        (dst_c, dst_off): (usize, usize),
    ) {
        let len = n * c * hw;
        if len == 0 {
            return;
        }
        let p = params(len, hw, c, 0, 0.0, u32::from(add), 0).u(src_c).u(src_off).u(dst_c).u(dst_off);
        self.dispatch(self.ew(), "copy_channels", p, &[(1, &src.buffer), (4, &dst.buffer)], (groups_for(len), 1));
    }
}
