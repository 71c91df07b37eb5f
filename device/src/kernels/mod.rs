//! The inference kernels: pure functions over caller-owned slices (CHW f32, packed u32 bits).
//!
//! Shapes are validated by `Model::parse`; the kernels still never index out of bounds: they walk
//! slices with iterators and `get`, so a wrong length yields fewer writes, never a panic.

mod bin_conv;
mod bin_conv_dense;
mod bin_conv_lanes;
mod float;
mod lane_count;

pub use bin_conv::{bin_conv, binarize};
pub use bin_conv_dense::{bin_conv_dense, dense_work_words, row_words};
pub use bin_conv_lanes::{
    bin_conv_lanes, binarize_rows, lane_work_words, lanes_pay, out_width, phase_row_words, use_lanes, MAX_BIN_WORDS,
};
pub use float::{add_assign, add_into, affine, avg_pool, conv2d, global_avg_pool, linear, max_pool, reciprocal};

/// A CHW shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    /// Pixels per channel.
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
}

/// ReLU as `x > 0 ? x : +0.0`: NaN and -0.0 both give +0.0, identically on every target
/// (`f32::max` leaves the sign of a zero unspecified and is a libm call on a Cortex-M4).
#[inline(always)]
pub fn relu(x: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        0.0
    }
}

/// Output positions `o` in `0..n_out` whose input `o * stride + off` lies in `0..n_in`, as a range.
pub(crate) fn valid_range(n_out: usize, n_in: usize, stride: usize, off: isize) -> core::ops::Range<usize> {
    let s = stride.max(1) as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let last = n_in as isize - 1 - off;
    let hi = if last < 0 { 0 } else { (last / s + 1).min(n_out as isize) };
    (lo.max(0) as usize)..(hi.max(lo).max(0) as usize)
}
