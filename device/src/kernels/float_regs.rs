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
//! The block's weights are copied once per group of output channels into a lane-major table on
//! the stack (`[c][tap][lane]`, [`WT_TAPS`] taps, 3-4 KiB), which every output position of the
//! group then walks with one pointer: no per-channel selects or checks. Input channels that do not
//! fit the table go in chunks, the sums carried from one chunk to the next through the output
//! planes (stored before ReLU and read back: the same bits). On `fmnist-demo`'s reduction skips
//! that took the overhead per input channel from ~40 instructions to ~11 beside the block's 208
//! (2.9 -> 2.6 instructions per MAC; a table of 128 taps, three chunks, measured 1 M more).
//!
//! The small stems' 3x3 at stride 1 and the reduction skips' 2x2 at stride 2 run here, in whole
//! blocks of output channels; [`super::conv2d`]'s tiles take the rest (each geometry and block
//! shape is a copy of the loops in flash).
//!
//! Where a same-size conv's rows are whole blocks (28 columns in 3 x 7 blocks, 32 in 4 x 4), the
//! first and last block of a row skip their taps on the padding (const `EDGE`), so no column goes
//! through the checked one-column path and no block overlaps another: the 1-channel 28x28 stem
//! went from 5.9 to 4.0 instructions per MAC. A block's sums are stored from registers, ReLU
//! decided once per store.

use super::{full_windows, tap_range, Shape};
use crate::model::ConvGeom;

/// Which columns of a block's window lie on the padding: none, the first K/2 (the row's first
/// block; its input row array starts at column 0) or the last K/2 (the last block; its array ends
/// at the row's last column).
const INSIDE: u8 = 0;
const LEFT: u8 = 1;
const RIGHT: u8 = 2;

/// Taps (of one input channel and kernel position, for every lane) in the lane-major weight table.
const WT_TAPS: usize = 256;

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

/// One chunk of input channels of a group of `L` output channels: their lane-major weights
/// (`[c - first channel][tap][lane]`), where the sums start (the biases for the first chunk, the
/// output planes' partial sums after it) and whether ReLU applies when they are stored (the last).
struct Chunk<'a, const L: usize> {
    wt: &'a [[f32; L]],
    chans: core::ops::Range<usize>,
    bias: Option<[f32; L]>,
    last: bool,
}

impl Conv<'_> {
    /// Kernel `K` (`KK = K*K` taps), stride `S`, `N = (P - 1) * S + K` input columns under a
    /// block of `P` output columns, `L` output channels per block. Returns the channels written.
    fn run<const K: usize, const S: usize, const KK: usize, const N: usize, const L: usize, const P: usize>(
        &self,
        weights: &[f32],
        out: &mut [f32],
    ) -> usize {
        const { assert!(KK == K * K && N == (P - 1) * S + K && KK <= WT_TAPS) };
        let (xs, os) = (self.xs, self.os);
        let per_o = xs.c * KK;
        if per_o == 0 || os.hw() == 0 {
            return 0;
        }
        // Output columns whose taps all lie inside the input row.
        let inner = full_windows(os.w, xs.w, self.g);
        let bias = |o: usize| self.bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0);
        let per_chunk = WT_TAPS / KK;
        let mut wt = [[0.0f32; L]; WT_TAPS];
        let mut done = 0;
        let w_blocks = weights.chunks_exact(L * per_o);
        for ((o, w), y) in (0..).step_by(L).zip(w_blocks).zip(out.chunks_exact_mut(L * os.hw())).take(os.c / L) {
            let mut planes = y.chunks_exact_mut(os.hw());
            let mut y: [&mut [f32]; L] = core::array::from_fn(|_| planes.next().unwrap_or(&mut []));
            for c0 in (0..xs.c).step_by(per_chunk) {
                let chans = c0..(c0 + per_chunk).min(xs.c);
                for (l, w_l) in w.chunks_exact(per_o).enumerate() {
                    let src = w_l.get(chans.start * KK..chans.end * KK).unwrap_or(&[]);
                    for (t, &v) in wt.iter_mut().zip(src) {
                        if let Some(t) = t.get_mut(l) {
                            *t = v;
                        }
                    }
                }
                let chunk = Chunk {
                    wt: wt.get(..chans.len() * KK).unwrap_or(&[]),
                    bias: (c0 == 0).then(|| core::array::from_fn(|l| bias(o + l))),
                    last: chans.end == xs.c,
                    chans,
                };
                self.channels::<K, S, KK, N, L, P>(&chunk, &mut y, inner.clone());
            }
            done += L;
        }
        done
    }

    /// Adds one chunk of input channels to the outputs of `L` channels (planes `out`), row by
    /// row: the interior columns `P` at a time (the last block ending at the interior's end and
    /// storing only the columns the blocks before it left), the others one at a time with checks.
    fn channels<const K: usize, const S: usize, const KK: usize, const N: usize, const L: usize, const P: usize>(
        &self,
        chunk: &Chunk<'_, L>,
        out: &mut [&mut [f32]; L],
        inner: core::ops::Range<usize>,
    ) {
        let (xs, os, pad) = (self.xs, self.os, self.g.pad);
        // The columns in blocks: all of the interior if it is at least a block wide.
        let blocks = if inner.len() >= P { inner } else { inner.start..inner.start };
        let relu = self.relu && chunk.last;
        // Same-size convs at stride 1 (padding K/2) whose rows are whole blocks, at least two, run
        // every column in blocks: the first and last skip the taps on the padding.
        let edges = S == 1 && pad == K / 2 && os.w == xs.w && os.w.is_multiple_of(P) && os.w >= 2 * P && xs.w >= N;
        // The first chunk's sums start at the biases, the same for every block.
        let first: Option<[[f32; L]; P]> = chunk.bias.map(|b| [b; P]);
        for oy in 0..os.h {
            let rows = tap_range(oy, xs.h, self.g);
            let top = (oy * S) as isize - pad as isize;
            let row_at = oy * os.w;
            // Where the sums of `n` columns from `ox` start.
            let load = |out: &[&mut [f32]; L], ox: usize, n: usize| -> [[f32; L]; P] {
                if let Some(acc) = first {
                    return acc;
                }
                core::array::from_fn(|p| {
                    core::array::from_fn(|l| {
                        let at = (p < n).then_some(row_at + ox + p);
                        at.and_then(|at| out.get(l).and_then(|o| o.get(at))).copied().unwrap_or(0.0)
                    })
                })
            };
            // Stores one column's sums at `ox`.
            let store = |out: &mut [&mut [f32]; L], ox: usize, acc: [f32; L]| {
                for (plane, v) in out.iter_mut().zip(acc) {
                    if let Some(d) = plane.get_mut(row_at + ox) {
                        *d = if relu { super::relu(v) } else { v };
                    }
                }
            };
            // Stores a block's columns `from..P` at `ox`: unrolled, ReLU decided once per call.
            let store_block = |out: &mut [&mut [f32]; L], ox: usize, acc: [[f32; L]; P], from: usize| {
                for (l, plane) in out.iter_mut().enumerate() {
                    let Some(dst) = plane.get_mut(row_at + ox..).and_then(|d| d.first_chunk_mut::<P>()) else {
                        continue;
                    };
                    let sums = acc.map(|a| a.get(l).copied().unwrap_or(0.0));
                    let cols = dst.iter_mut().zip(sums).enumerate().filter(|&(p, _)| p >= from);
                    if relu {
                        cols.for_each(|(_, (d, v))| *d = super::relu(v));
                    } else {
                        cols.for_each(|(_, (d, v))| *d = v);
                    }
                }
            };
            if edges {
                for ox in (0..os.w).step_by(P) {
                    let acc = load(out, ox, P);
                    let acc = if ox == 0 {
                        self.block::<K, S, KK, N, L, P, LEFT>(chunk, acc, rows, top, 0)
                    } else if ox + P == os.w {
                        self.block::<K, S, KK, N, L, P, RIGHT>(chunk, acc, rows, top, xs.w - N)
                    } else {
                        self.block::<K, S, KK, N, L, P, INSIDE>(chunk, acc, rows, top, ox - pad)
                    };
                    store_block(out, ox, acc, 0);
                }
                continue;
            }
            for ox in (0..blocks.start.min(os.w)).chain(blocks.end..os.w) {
                let acc = self.column::<KK, L>(chunk, load(out, ox, 1)[0], rows, top, ox);
                store(out, ox, acc);
            }
            let starts = (blocks.start..blocks.end.saturating_sub(P - 1)).step_by(P);
            for ox in starts {
                let acc = self.block::<K, S, KK, N, L, P, INSIDE>(
                    chunk,
                    load(out, ox, P),
                    rows,
                    top,
                    (ox * S).saturating_sub(pad),
                );
                store_block(out, ox, acc, 0);
            }
            let left = blocks.len() % P;
            if left != 0 {
                // The last block overlaps the one before: it keeps only its last `left` columns
                // (the others' sums, already advanced by this chunk, are read and dropped).
                let ox = blocks.end - P;
                let acc = self.block::<K, S, KK, N, L, P, INSIDE>(
                    chunk,
                    load(out, ox, P),
                    rows,
                    top,
                    (ox * S).saturating_sub(pad),
                );
                store_block(out, ox, acc, P - left);
            }
        }
    }

    /// `P` output columns of `L` channels, accumulated in registers from `acc` over the chunk's
    /// input channels, kernel rows `rows`, kernel columns. The block's `N`-column input row array
    /// starts at input column `ix0`; `EDGE` says which of its window's columns are padding.
    #[inline(always)]
    fn block<
        const K: usize,
        const S: usize,
        const KK: usize,
        const N: usize,
        const L: usize,
        const P: usize,
        const EDGE: u8,
    >(
        &self,
        chunk: &Chunk<'_, L>,
        mut acc: [[f32; L]; P],
        rows: (usize, usize),
        top: isize,
        ix0: usize,
    ) -> [[f32; L]; P] {
        let (w_in, hw) = (self.xs.w, self.xs.hw().max(1));
        let (ky0, ky1) = (rows.0, rows.1.min(K));
        let at0 = (top + ky0 as isize).max(0) as usize * w_in + ix0;
        let tap = |acc: &mut [[f32; L]; P], wv: &[f32; L], row: &[f32; N], kx: usize| {
            // Column `p*S + kx` of the block's N-column window; at the edges the row starts K/2
            // columns later (LEFT) or earlier (RIGHT) than the window, whose columns on the
            // padding are skipped (None), as the naive loop skips them.
            let xv: [Option<f32>; P] = core::array::from_fn(|p| {
                let j = p * S + kx;
                let at = match EDGE {
                    LEFT => j.checked_sub(K / 2),
                    RIGHT => (j + K / 2 < N).then_some(j + K / 2),
                    _ => Some(j),
                };
                at.map(|i| row.get(i).copied().unwrap_or(0.0))
            });
            for (a, xp) in acc.iter_mut().zip(xv) {
                let Some(xp) = xp else { continue };
                for (a, &wl) in a.iter_mut().zip(wv) {
                    *a += xp * wl;
                }
            }
        };
        let chans = self.x.chunks_exact(hw).skip(chunk.chans.start).zip(chunk.wt.chunks_exact(KK));
        // Each chunk of the table is KK taps long: the fallback is never taken.
        let no_taps = [[0.0; L]; KK];
        if (ky0, ky1) == (0, K) {
            // Every kernel row inside the image (all rows but the borders): unrolled.
            for (x_c, w_c) in chans {
                let w_c = w_c.first_chunk::<KK>().unwrap_or(&no_taps);
                for ky in 0..K {
                    // Interior rows always lie inside the plane; leaving the block on a missing
                    // one (never taken) keeps the loop free of a path that skips a row.
                    let Some(row) = x_c.get(at0 + ky * w_in..).and_then(|r| r.first_chunk::<N>()) else { return acc };
                    for kx in 0..K {
                        if let Some(wv) = w_c.get(ky * K + kx) {
                            tap(&mut acc, wv, row, kx);
                        }
                    }
                }
            }
            return acc;
        }
        for (x_c, w_c) in chans {
            for ky in ky0..ky1 {
                let Some(row) = x_c.get(at0 + (ky - ky0) * w_in..).and_then(|r| r.first_chunk::<N>()) else { continue };
                for kx in 0..K {
                    if let Some(wv) = w_c.get(ky * K + kx) {
                        tap(&mut acc, wv, row, kx);
                    }
                }
            }
        }
        acc
    }

    /// One output column of `L` channels, summed from `acc` over the chunk, every tap checked.
    fn column<const KK: usize, const L: usize>(
        &self,
        chunk: &Chunk<'_, L>,
        mut acc: [f32; L],
        rows: (usize, usize),
        top: isize,
        ox: usize,
    ) -> [f32; L] {
        let (xs, k) = (self.xs, self.g.k);
        let (kx0, kx1) = tap_range(ox, xs.w, self.g);
        let left = (ox * self.g.stride) as isize - self.g.pad as isize;
        let chans = self.x.chunks_exact(xs.hw().max(1)).skip(chunk.chans.start).zip(chunk.wt.chunks_exact(KK));
        for (x_c, w_c) in chans {
            for ky in rows.0..rows.1 {
                let iy = (top + ky as isize).max(0) as usize;
                for kx in kx0..kx1 {
                    let ix = (left + kx as isize).max(0) as usize;
                    let xv = x_c.get(iy * xs.w + ix).copied().unwrap_or(0.0);
                    let Some(wv) = w_c.get(ky * k + kx) else { continue };
                    for (a, &w) in acc.iter_mut().zip(wv) {
                        *a += xv * w;
                    }
                }
            }
        }
        acc
    }
}
