//! The float conv for a scalar FPU (the Cortex-M4F: 32 single-precision registers, no SIMD).
//!
//! [`super::conv2d`]'s tiles keep their accumulators in memory and feed them one input channel at
//! a time, which on the Cortex-M4 costs a load and a store of the accumulator, and often of the
//! weight, around every multiply and add (~4.9 instructions per MAC measured on `fmnist-demo`'s
//! reduction skips). Here a block of 4 output channels x 4 output columns (or 3 x 7 where rows
//! are a multiple of 7 wide) accumulates in registers over all its terms (c, ky, kx), so a term
//! costs one load per channel and per column and one multiply and one add per output. Each output
//! still sums `bias, then c, ky, kx ascending` with padded taps skipped: the same bits as the
//! naive loop on every target.
//!
//! The small stems' 3x3 at stride 1 and the reduction skips' 2x2 at stride 2 run here, in whole
//! blocks of output channels; [`super::conv2d`]'s tiles take the rest (each geometry and block
//! shape is a copy of the loops in flash).

use super::{full_windows, tap_range, Shape};
use crate::model::ConvGeom;

/// Runs the conv's output channels in whole blocks if its geometry is one this kernel takes
/// (dilation 1; 3x3 at stride 1, 2x2 at stride 2); returns how many channels it wrote (0
/// when it declines). Same contract as [`super::conv2d`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_regs(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) -> usize {
    let c = Conv { x, xs, g, bias, relu, os };
    // Blocks of L output channels x P output columns: 4 x 4, or 3 x 7 where rows are a multiple
    // of 7 wide (28, 14, 7: no column computed twice). Either way the accumulators, one weight per
    // channel and the inputs in flight fit the 32 registers.
    let sevens = os.w.is_multiple_of(7) && os.c.is_multiple_of(3);
    match (g.k, g.stride, g.dil, sevens) {
        (2, 2, 1, false) => c.run::<2, 2, 4, 8, 4, 4>(weights, out),
        (2, 2, 1, true) => c.run::<2, 2, 4, 14, 3, 7>(weights, out),
        (3, 1, 1, false) => c.run::<3, 1, 9, 6, 4, 4>(weights, out),
        (3, 1, 1, true) => c.run::<3, 1, 9, 9, 3, 7>(weights, out),
        _ => 0,
    }
}

struct Conv<'a> {
    x: &'a [f32],
    xs: Shape,
    g: ConvGeom,
    bias: Option<&'a [f32]>,
    relu: bool,
    os: Shape,
}

impl Conv<'_> {
    /// Kernel `K` (`KK = K*K` taps), stride `S`, `N = (P - 1) * S + K` input columns under a
    /// block of `P` output columns, `L` output channels per block. Returns the channels written.
    fn run<const K: usize, const S: usize, const KK: usize, const N: usize, const L: usize, const P: usize>(
        &self,
        weights: &[f32],
        out: &mut [f32],
    ) -> usize {
        const { assert!(KK == K * K && N == (P - 1) * S + K) };
        let (xs, os) = (self.xs, self.os);
        let per_o = xs.c * KK;
        if per_o == 0 || os.hw() == 0 {
            return 0;
        }
        // Output columns whose taps all lie inside the input row.
        let inner = full_windows(os.w, xs.w, self.g);
        let bias = |o: usize| self.bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0);
        let mut done = 0;
        let w_blocks = weights.chunks_exact(L * per_o);
        for ((o, w), y) in (0..).step_by(L).zip(w_blocks).zip(out.chunks_exact_mut(L * os.hw())).take(os.c / L) {
            let w: [&[[f32; KK]]; L] =
                core::array::from_fn(|l| w.get(l * per_o..(l + 1) * per_o).map_or(&[][..], |w| w.as_chunks::<KK>().0));
            let b: [f32; L] = core::array::from_fn(|l| bias(o + l));
            let mut planes = y.chunks_exact_mut(os.hw());
            let y: [&mut [f32]; L] = core::array::from_fn(|_| planes.next().unwrap_or(&mut []));
            self.channels::<K, S, KK, N, L, P>(w, b, y, inner.clone());
            done += L;
        }
        done
    }

    /// The outputs of `L` channels (weights `w`, biases `b`, planes `out`), row by row: the
    /// interior columns `P` at a time (the last block ending at the interior's end, recomputing up
    /// to `P - 1` columns to the same bits), the others one at a time with checks.
    fn channels<const K: usize, const S: usize, const KK: usize, const N: usize, const L: usize, const P: usize>(
        &self,
        w: [&[[f32; KK]]; L],
        b: [f32; L],
        mut out: [&mut [f32]; L],
        inner: core::ops::Range<usize>,
    ) {
        let (xs, os, pad) = (self.xs, self.os, self.g.pad);
        // The columns in blocks: all of the interior if it is at least a block wide.
        let blocks = if inner.len() >= P { inner } else { inner.start..inner.start };
        for oy in 0..os.h {
            let rows = tap_range(oy, xs.h, self.g);
            let top = (oy * S) as isize - pad as isize;
            let mut store = |ox: usize, acc: &[[f32; L]]| {
                for (l, plane) in out.iter_mut().enumerate() {
                    let Some(dst) = plane.get_mut(oy * os.w + ox..) else { continue };
                    for (d, a) in dst.iter_mut().zip(acc) {
                        let v = a.get(l).copied().unwrap_or(0.0);
                        *d = if self.relu { super::relu(v) } else { v };
                    }
                }
            };
            for ox in (0..blocks.start.min(os.w)).chain(blocks.end..os.w) {
                store(ox, &[self.column(&w, b, rows, top, ox)]);
            }
            let starts = (blocks.start..blocks.end.saturating_sub(P - 1)).step_by(P);
            let tail = (blocks.len() % P != 0).then(|| blocks.end - P);
            for ox in starts.chain(tail) {
                store(ox, &self.block::<K, S, KK, N, L, P>(&w, b, rows, top, (ox * S).saturating_sub(pad)));
            }
        }
    }

    /// `P` interior output columns (the first one's taps start at input column `ix0`) of `L`
    /// channels, accumulated in registers over input channels, kernel rows `rows`, kernel columns.
    #[inline(always)]
    fn block<const K: usize, const S: usize, const KK: usize, const N: usize, const L: usize, const P: usize>(
        &self,
        w: &[&[[f32; KK]]; L],
        b: [f32; L],
        rows: (usize, usize),
        top: isize,
        ix0: usize,
    ) -> [[f32; L]; P] {
        let (xs, w_in, hw) = (self.xs, self.xs.w, self.xs.hw().max(1));
        let mut acc = [b; P];
        let (ky0, ky1) = (rows.0, rows.1.min(K));
        let at0 = (top + ky0 as isize).max(0) as usize * w_in + ix0;
        // Every filter's weights cut to exactly the input channels, so that the loop below indexes
        // them without checks.
        let n = xs.c;
        if w.iter().any(|w| w.len() < n) {
            return acc;
        }
        let w: [&[[f32; KK]]; L] = w.map(|w| w.get(..n).unwrap_or(&[]));
        let tap = |acc: &mut [[f32; L]; P], w_c: &[&[f32; KK]; L], row: &[f32; N], ky: usize, kx: usize| {
            let xv: [f32; P] = core::array::from_fn(|p| row.get(p * S + kx).copied().unwrap_or(0.0));
            let wv: [f32; L] = w_c.map(|w| w.get(ky * K + kx).copied().unwrap_or(0.0));
            for (a, &xp) in acc.iter_mut().zip(&xv) {
                for (a, &wl) in a.iter_mut().zip(&wv) {
                    *a += xp * wl;
                }
            }
        };
        let chans = self.x.chunks_exact(hw).take(n).enumerate();
        let weights = |ci: usize| -> [&[f32; KK]; L] { w.map(|w| w.get(ci).unwrap_or(&[0.0; KK])) };
        if (ky0, ky1) == (0, K) {
            // Every kernel row inside the image (all rows but the borders): unrolled.
            for (ci, x_c) in chans {
                let w_c = weights(ci);
                for ky in 0..K {
                    let Some(row) = x_c.get(at0 + ky * w_in..).and_then(|r| r.first_chunk::<N>()) else { continue };
                    for kx in 0..K {
                        tap(&mut acc, &w_c, row, ky, kx);
                    }
                }
            }
            return acc;
        }
        for (ci, x_c) in chans {
            let w_c = weights(ci);
            for ky in ky0..ky1 {
                let Some(row) = x_c.get(at0 + (ky - ky0) * w_in..).and_then(|r| r.first_chunk::<N>()) else { continue };
                for kx in 0..K {
                    tap(&mut acc, &w_c, row, ky, kx);
                }
            }
        }
        acc
    }

    /// One output column of `L` channels, every tap checked.
    fn column<const KK: usize, const L: usize>(
        &self,
        w: &[&[[f32; KK]]; L],
        b: [f32; L],
        rows: (usize, usize),
        top: isize,
        ox: usize,
    ) -> [f32; L] {
        let (xs, k) = (self.xs, self.g.k);
        let (kx0, kx1) = tap_range(ox, xs.w, self.g);
        let left = (ox * self.g.stride) as isize - self.g.pad as isize;
        let mut acc = b;
        for (ci, x_c) in self.x.chunks_exact(xs.hw().max(1)).take(xs.c).enumerate() {
            for ky in rows.0..rows.1 {
                let iy = (top + ky as isize).max(0) as usize;
                for kx in kx0..kx1 {
                    let ix = (left + kx as isize).max(0) as usize;
                    let xv = x_c.get(iy * xs.w + ix).copied().unwrap_or(0.0);
                    for (a, w) in acc.iter_mut().zip(w) {
                        *a += xv * w.get(ci).and_then(|w| w.get(ky * k + kx)).copied().unwrap_or(0.0);
                    }
                }
            }
        }
        acc
    }
}
