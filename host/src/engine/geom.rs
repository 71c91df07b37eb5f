//! Shapes of the engine's primitives, checked before any kernel runs.
//!
//! Every tensor is f32, row-major. Images are `[N, C, H, W]`; matrices `[rows, cols]`.

use std::fmt;

/// A shape mismatch found before a kernel ran: names the op and the shapes it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {detail}")]
pub struct ShapeError {
    pub op: &'static str,
    pub detail: String,
}

impl ShapeError {
    pub fn new(op: &'static str, detail: impl Into<String>) -> Self {
        Self { op, detail: detail.into() }
    }
}

/// Geometry of a 2-D convolution over `[n, c_in, h, w]` with a square `k x k` kernel,
/// producing `[n, c_out, out_h, out_w]`. Weights are `[c_out, c_in, k, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
}

impl ConvGeom {
    /// Extent of the dilated kernel: `dil * (k - 1) + 1`.
    pub fn span(&self) -> usize {
        self.dil * (self.k - 1) + 1
    }
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.span()) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.span()) / self.stride + 1
    }
    pub fn in_len(&self) -> usize {
        self.n * self.c_in * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.n * self.c_out * self.out_h() * self.out_w()
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }
    /// Multiply-accumulates of one forward pass.
    pub fn macs(&self) -> usize {
        self.out_len() * self.c_in * self.k * self.k
    }
    /// Rejects a geometry whose kernel does not fit the padded input, or zero sizes.
    pub fn check(&self) -> Result<(), ShapeError> {
        let dims = [self.n, self.c_in, self.h, self.w, self.c_out, self.k, self.stride, self.dil];
        if dims.contains(&0) {
            return Err(ShapeError::new("conv2d", format!("zero dimension in {self}")));
        }
        if self.h + 2 * self.pad < self.span() || self.w + 2 * self.pad < self.span() {
            return Err(ShapeError::new(
                "conv2d",
                format!(
                    "kernel span {} does not fit input {}x{} with padding {}",
                    self.span(),
                    self.h,
                    self.w,
                    self.pad
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ConvGeom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input [{}, {}, {}, {}] -> [{}, {}, {}, {}], kernel {}x{} stride {} padding {} dilation {}",
            self.n,
            self.c_in,
            self.h,
            self.w,
            self.n,
            self.c_out,
            self.out_h(),
            self.out_w(),
            self.k,
            self.k,
            self.stride,
            self.pad,
            self.dil
        )
    }
}

/// Geometry of a 3x3 pooling window with padding 1 over `[n, c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolGeom {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub stride: usize,
}

impl PoolGeom {
    pub const K: usize = 3;
    pub const PAD: usize = 1;
    pub fn out_h(&self) -> usize {
        (self.h + 2 * Self::PAD - Self::K) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * Self::PAD - Self::K) / self.stride + 1
    }
    pub fn in_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.n * self.c * self.out_h() * self.out_w()
    }
}

/// `[n, c, hw]` view of an image tensor for per-channel ops (batch norm, channel scaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChanGeom {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

impl ChanGeom {
    pub fn len(&self) -> usize {
        self.n * self.c * self.hw
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// General matrix product `C[m, n] = op(A) op(B)` where `op(A)` is `[m, k]` and `op(B)` is
/// `[k, n]`; with `trans_a` the buffer A is stored `[k, m]`, with `trans_b` B is stored `[n, k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatGeom {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}
