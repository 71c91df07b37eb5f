//! The inference kernels: pure functions over caller-owned slices (CHW f32, packed u32 bits).
//!
//! Shapes are validated by `Model::parse`; the kernels still never index out of bounds: they walk
//! slices with iterators and `get`, so a wrong length yields fewer writes, never a panic.

mod bin_conv;
mod bin_conv_dense;
mod bin_conv_lanes;
mod float;
mod float_regs;
mod lane_count;
mod lane_emit;
mod lane_stacks;
mod pool;
mod threshold;

pub use bin_conv::{bin_conv, binarize};
pub use bin_conv_dense::{bin_conv_dense, dense_work_words, row_words};
pub use bin_conv_lanes::{bin_conv_lanes, lane_work_words, lanes_pay, out_width, use_lanes, MAX_BIN_WORDS};
pub use float::{add_assign, add_into, affine, conv2d, global_avg_pool, linear};
pub use lane_stacks::{binarize_rows, phase_row_words};
pub use pool::{avg_pool, max_pool, reciprocal};
pub(crate) use threshold::{with_threshold, Packer, Threshold};

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

/// Taps `lo..hi` of a `k`-tap window (dilation `dil`) at output position `o` that lie inside
/// `0..n_in`: the taps are evenly spaced, so those inside form a range.
#[inline]
pub(crate) fn tap_range(o: usize, n_in: usize, g: crate::model::ConvGeom) -> (usize, usize) {
    let (d, top) = (g.dil.max(1), (o * g.stride) as isize - g.pad as isize);
    let lo = if top >= 0 { 0 } else { (-top as usize).div_ceil(d) }.min(g.k);
    let hi = if (n_in as isize) > top { (n_in as isize - top) as usize } else { 0 }.div_ceil(d).clamp(lo, g.k);
    (lo, hi)
}

/// Output positions `o` in `0..n_out` whose input `o * stride + off` lies in `0..n_in`, as a range.
pub(crate) fn valid_range(n_out: usize, n_in: usize, stride: usize, off: isize) -> core::ops::Range<usize> {
    let s = stride.max(1) as isize;
    let lo = if off >= 0 { 0 } else { ((-off) + s - 1) / s };
    let last = n_in as isize - 1 - off;
    let hi = if last < 0 { 0 } else { (last / s + 1).min(n_out as isize) };
    (lo.max(0) as usize)..(hi.max(lo).max(0) as usize)
}

/// Output positions `o` in `0..n_out` whose whole window (every one of the `k` taps) lies inside
/// `0..n_in`, as a range within `0..n_out` (empty where there are none).
pub(crate) fn full_windows(n_out: usize, n_in: usize, g: crate::model::ConvGeom) -> core::ops::Range<usize> {
    let pad = g.pad as isize;
    let first = valid_range(n_out, n_in, g.stride, -pad);
    let last = valid_range(n_out, n_in, g.stride, (g.k.saturating_sub(1) * g.dil.max(1)) as isize - pad);
    let start = first.start.max(last.start).min(n_out);
    start..first.end.min(last.end).clamp(start, n_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::words_for;
    use crate::model::ConvGeom;
    use std::vec;

    /// The full-window range is exactly the positions whose taps all lie inside (by `tap_range`).
    #[test]
    fn full_windows_are_the_positions_with_every_tap_inside() {
        for (k, stride, pad, dil) in
            [(1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 4, 2), (5, 2, 4, 2), (2, 2, 0, 1), (3, 3, 5, 2)]
        {
            let g = ConvGeom { k, stride, pad, dil };
            for n_in in 1..40 {
                let n_out = n_in + 2 * pad;
                let want: vec::Vec<usize> = (0..n_out).filter(|&o| tap_range(o, n_in, g) == (0, k)).collect();
                let got: vec::Vec<usize> = full_windows(n_out, n_in, g).collect();
                assert_eq!(got, want, "{g:?}, {n_in} in, {n_out} out");
            }
        }
    }

    /// Both device kernels (dense rows, bit lanes) against the per-tap kernel, bit for bit, each
    /// after its own binarize, on every geometry: strides 1-3, dilations, padding wider than the
    /// window, 1-96 channels, inputs up to 9 rows and up to 40 columns (lane rows split into
    /// segments) and a quarter of them 28x28 or 14x14, zero, negative and non-finite scales (the
    /// lane kernel folds the sign in).
    #[test]
    fn dense_and_lane_kernels_match_the_per_tap_kernel_bit_for_bit() {
        let mut next = crate::xorshift32(0x9E37_79B9);
        let mut cases = 0;
        for &c in &[1usize, 5, 12, 16, 31, 32, 33, 48, 70, 80, 96] {
            for k in [1usize, 3, 5] {
                for (stride, pad, dil) in [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 4, 2), (2, 4, 2), (1, 5, 1), (3, 2, 2)]
                {
                    let w = 1 + next() as usize % if next().is_multiple_of(4) { 40 } else { 9 };
                    let xs = match next() % 8 {
                        // Maps of fmnist-demo's sizes, where the lane kernel counts P by start rows.
                        0 => Shape { c, h: 28, w: 28 },
                        1 => Shape { c, h: 14, w: 14 },
                        _ => Shape { c, h: 1 + next() as usize % 9, w },
                    };
                    let g = ConvGeom { k, stride, pad, dil };
                    let c_out = 1 + next() as usize % 8;
                    let os = Shape { c: c_out, h: out_width(xs.h, g), w: out_width(xs.w, g) };
                    if os.hw() == 0 {
                        continue;
                    }
                    let wpt = words_for(c);
                    let x: vec::Vec<f32> = (0..c * xs.hw()).map(|_| (next() % 1000) as f32 / 500.0 - 1.0).collect();
                    let flip: vec::Vec<f32> = (0..c).map(|i| [1.0, -1.0, 1.0, 0.5][i % 4]).collect();
                    let threshold: vec::Vec<f32> = (0..c).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
                    let low = |n: usize| if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
                    let tap_mask = |i: usize| low(c - (i % wpt) * 32);
                    let packed: vec::Vec<u32> = (0..c_out * k * k * wpt).map(|i| next() & tap_mask(i)).collect();
                    let scales = [0.01, -0.02, 0.0, 3e-3, -0.5, f32::INFINITY, f32::NAN, -0.0];
                    let scale: vec::Vec<f32> = (0..c_out).map(|o| scales[(o + c) % scales.len()]).collect();
                    let mut bits = vec![0u32; xs.hw() * wpt];
                    binarize(&x, xs.hw(), &flip, &threshold, &mut bits);
                    let (mut row, mut sums) = (vec![0u32; k * k * wpt], vec![0u32; c_out * k * k]);
                    let mut want = vec![0f32; os.c * os.hw()];
                    bin_conv(&bits, xs, g, &scale, &packed, &mut row, &mut sums, &mut want, os);
                    let same = |got: &[f32]| want.iter().zip(got).all(|(a, b)| a.to_bits() == b.to_bits());

                    let mut work = vec![0xDEAD_BEEFu32; dense_work_words(c, c_out, g, xs.h, xs.w)];
                    let mut got = vec![f32::NAN; os.c * os.hw()];
                    bin_conv_dense(&bits, xs, g, &scale, &packed, &mut work, &mut got, os);
                    assert!(same(&got), "dense: c {c} {xs:?} {g:?} c_out {c_out}: {want:?} vs {got:?}");

                    let mut rows = vec![0xDEAD_BEEFu32; phase_row_words(c, xs.h, xs.w, stride)];
                    binarize_rows(&x, xs, stride, &flip, &threshold, &mut rows);
                    let mut work = vec![0xDEAD_BEEFu32; lane_work_words(c, g, xs.h, xs.w)];
                    let mut got = vec![f32::NAN; os.c * os.hw()];
                    bin_conv_lanes(&mut rows, xs, g, &scale, &packed, &mut work, &mut got, os);
                    assert!(same(&got), "lanes: c {c} {xs:?} {g:?} c_out {c_out}: {want:?} vs {got:?}");
                    cases += 1;
                }
            }
        }
        std::println!("{cases} geometries: dense and lane kernels == per-tap kernel, bit for bit");
        assert!(cases > 100);
    }
}
