//! Turning the bit-lane conv's counts into outputs ([`super::bin_conv_lanes`]): each filter's
//! per-tap weight sums, its border prefix table (the weight sum `W` over the taps inside the image
//! at each output), and the loop that combines a group's counts with `P` and `W`, applies ReLU and
//! the scale, and stores the floats.

use super::bin_conv_lanes::{Lanes, MAX_KERNEL, MAX_TAPS};
use super::{full_windows, tap_range, Shape};
use crate::format::BITS;
use crate::model::ConvGeom;

/// One filter: its scale, its per-tap sums of +-1 weights over the real channels, and its number
/// of +1 weights.
pub(super) struct Filter {
    sc: f32,
    tap_sum: [i32; MAX_TAPS],
    pub(super) ones: u32,
}

impl Filter {
    pub(super) fn new(w: &[u32], sc: f32, masks: &[u32], c_in: usize) -> Self {
        let mut tap_sum = [0i32; MAX_TAPS];
        let mut ones = 0u32;
        let mut put = |sum: &mut i32, tap_ones: u32| {
            ones += tap_ones;
            *sum = 2 * tap_ones as i32 - c_in as i32;
        };
        if let [m] = *masks {
            // One word per tap (up to 32 channels): no inner loop.
            w.iter().zip(tap_sum.iter_mut()).for_each(|(&w, sum)| put(sum, (w & m).count_ones()));
        } else {
            for (w_tap, sum) in w.chunks_exact(masks.len().max(1)).zip(tap_sum.iter_mut()) {
                put(sum, w_tap.iter().zip(masks).map(|(w, m)| (w & m).count_ones()).sum());
            }
        }
        Filter { sc, tap_sum, ones }
    }

    /// What writes this filter's outputs when it counts the terms under its +1 weights
    /// (`ones_side`) or under its -1 weights, with its border prefix table built in `prefix`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit<'p>(
        &self,
        ones_side: bool,
        inner: &Interior,
        prefix: &'p mut [u32],
        l: Lanes,
        g: ConvGeom,
        xs: Shape,
        os: Shape,
    ) -> Emit<'p> {
        // Where the scale is finite and nonzero, its sign is folded into the sums so that ReLU
        // is an integer max and the product is exact: relu(u * sc) == max(sign*u, 0) * |sc|.
        let sc = self.sc;
        let fast = sc.is_finite() && sc != 0.0;
        let sign = if fast && sc < 0.0 { -1 } else { 1 };
        inner.fill_prefix(&self.tap_sum, sign, g.k, prefix);
        // With one segment per output row, each lane's weight sum in a group of rows inside the
        // image: the prefix table's last row, once per row of the group.
        let mut lane_w = [0u32; BITS];
        if let (1, Some(w_row)) = (l.n_seg, prefix.get(g.k * os.w..(g.k + 1) * os.w)) {
            for lanes in lane_w.chunks_exact_mut(os.w.max(1)).take(l.rows) {
                lanes.iter_mut().zip(w_row).for_each(|(w, &p)| *w = p);
            }
        }
        Emit { prefix, lane_w, l, g, xs, os, sc, neg: (sign < 0) == ones_side, fast, rows: inner.rows.clone() }
    }
}

/// The output rows and columns whose taps all lie inside the image (`rows`, `cols`), and what
/// the border columns' tap ranges need.
pub(super) struct Interior {
    w_out: usize,
    cols: core::ops::Range<usize>,
    rows: core::ops::Range<usize>,
    x_in: usize,
    g: ConvGeom,
}

impl Interior {
    pub(super) fn new(xs: Shape, g: ConvGeom, os: Shape) -> Self {
        let (cols, rows) = (full_windows(os.w, xs.w, g), full_windows(os.h, xs.h, g));
        Interior { w_out: os.w, cols, rows, x_in: xs.w, g }
    }

    /// Fills `prefix[ky'][ox]` (`(k + 1) x w_out`) with `sign` times the sum of the tap sums over
    /// the kernel rows before `ky'` and the tap columns valid at `ox`.
    fn fill_prefix(&self, tap_sum: &[i32; MAX_TAPS], sign: i32, k: usize, prefix: &mut [u32]) {
        let w_out = self.w_out.max(1);
        // row_pre[ky][kx'] = sign times the sum over kx < kx' of the tap sums of row ky.
        let mut row_pre = [0i32; MAX_KERNEL * (MAX_KERNEL + 1)];
        for (pre, taps) in row_pre.chunks_exact_mut(k + 1).zip(tap_sum.chunks_exact(k)).take(k) {
            let mut acc = 0i32;
            for (p, &t) in pre.iter_mut().skip(1).zip(taps) {
                acc = acc.wrapping_add(t);
                *p = sign.wrapping_mul(acc);
            }
        }
        let mut rows = prefix.chunks_exact_mut(w_out);
        if let Some(first) = rows.next() {
            first.fill(0);
        }
        // The interior columns (every tap column valid) hold one value per row: a fill.
        let mut all = 0i32;
        for (pre, row) in row_pre.chunks_exact(k + 1).zip(rows) {
            all = all.wrapping_add(pre.get(k).copied().unwrap_or(0));
            if let Some(r) = row.get_mut(self.cols.clone()) {
                r.fill(all as u32);
            }
        }
        // The border columns one at a time, down the kernel rows.
        for ox in (0..self.cols.start).chain(self.cols.end..w_out) {
            let (kx0, kx1) = tap_range(ox, self.x_in, self.g);
            let mut acc = 0i32;
            for (row, pre) in prefix.chunks_exact_mut(w_out).skip(1).zip(row_pre.chunks_exact(k + 1)) {
                let (hi, lo) = (pre.get(kx1).copied().unwrap_or(0), pre.get(kx0).copied().unwrap_or(0));
                acc = acc.wrapping_add(hi.wrapping_sub(lo));
                if let Some(p) = row.get_mut(ox) {
                    *p = acc as u32;
                }
            }
        }
    }
}

/// What one filter's outputs need besides the counts: its border prefix table, its scale, the
/// shapes, whether its sums are negated (`neg`: kappa = -1 in [`Self::rows`]) and whether its
/// scale's sign is folded in (`fast`).
pub(super) struct Emit<'a> {
    prefix: &'a [u32],
    /// Where a segment is a whole output row: each lane's weight sum `W` in a group whose rows all
    /// lie inside the image.
    lane_w: [u32; BITS],
    l: Lanes,
    g: ConvGeom,
    xs: Shape,
    os: Shape,
    sc: f32,
    neg: bool,
    fast: bool,
    /// The output rows whose kernel rows all lie inside the image.
    rows: core::ops::Range<usize>,
}

impl Emit<'_> {
    /// Writes the outputs of group `i` from its lane counts `m` and `q = -2P` (see [`Self::rows`]).
    pub(super) fn group<C: Copy + Into<u32>>(&self, m: &[C; BITS], q: &[u32], out_o: &mut [f32], i: usize) {
        match (self.neg, self.fast) {
            (false, true) => self.rows::<C, false, true>(m, q, out_o, i),
            (true, true) => self.rows::<C, true, true>(m, q, out_o, i),
            // A scale of 0, infinity or NaN (no trained model has one): one copy, kappa read
            // at run time, to keep flash for the copies that run.
            (_, false) => self.rows::<C, false, false>(m, q, out_o, i),
        }
    }

    /// Writes the outputs of group `i` (segment `i / groups`) from its lane counts `m` and
    /// `q = -2P`: `u = kappa (4 m + q) - W` (`kappa = -1` when `NEG`, or without `FAST` when
    /// `self.neg`), then `max(u, 0) * |scale|` (`FAST`, the scale's sign folded into kappa and
    /// W) or `relu(u * scale)`.
    #[inline(never)]
    fn rows<C: Copy + Into<u32>, const NEG: bool, const FAST: bool>(
        &self,
        m: &[C; BITS],
        q: &[u32],
        out_o: &mut [f32],
        i: usize,
    ) {
        let (l, w_out, abs_sc, sc) = (self.l, self.os.w, self.sc.abs(), self.sc);
        let neg = NEG || (!FAST && self.neg);
        let out = |m: C, q: u32, w: u32| {
            let t = (m.into() << 2).wrapping_add(q) as i32;
            let u = if neg { t.wrapping_neg() } else { t }.wrapping_sub(w as i32);
            if FAST {
                u.max(0) as f32 * abs_sc
            } else {
                super::relu(u as f32 * sc)
            }
        };
        let (seg, grp) = (i / l.groups, i % l.groups);
        let first = grp * l.rows;
        if l.n_seg == 1 && self.rows.start <= first && first + l.rows <= self.rows.end {
            // Whole rows inside the image: the group's outputs are its lanes in order.
            let n = l.rows * w_out;
            if let (Some(m), Some(q), Some(w), Some(y)) =
                (m.get(..n), q.get(..n), self.lane_w.get(..n), out_o.get_mut(first * w_out..first * w_out + n))
            {
                each4(m, q, w, w, y, |m, q, w, _| out(m, q, w));
            }
            return;
        }
        let x0 = seg * l.seg_w;
        let width = l.seg_w.min(w_out.saturating_sub(x0));
        for r in 0..l.rows {
            let oy = first + r;
            if oy >= self.os.h {
                break;
            }
            let (ky0, ky1) = if self.rows.contains(&oy) { (0, self.g.k) } else { tap_range(oy, self.xs.h, self.g) };
            let lanes = r * l.seg_w..r * l.seg_w + width;
            let (Some(m), Some(q), Some(hi), Some(lo), Some(y)) = (
                m.get(lanes.clone()),
                q.get(lanes),
                self.prefix.get(ky1 * w_out + x0..ky1 * w_out + x0 + width),
                self.prefix.get(ky0 * w_out + x0..ky0 * w_out + x0 + width),
                out_o.get_mut(oy * w_out + x0..oy * w_out + x0 + width),
            ) else {
                continue;
            };
            if ky0 == 0 {
                // No kernel row above the image: the prefix row `lo` is all zeros.
                each4(m, q, hi, hi, y, |m, q, h, _| out(m, q, h));
            } else {
                each4(m, q, hi, lo, y, |m, q, h, lw| out(m, q, h.wrapping_sub(lw)));
            }
        }
    }
}

/// `y[i] = f(m[i], q[i], a[i], b[i])` over the common length: blocks of 4 lanes first, whose loads
/// and stores the compiler addresses with fixed offsets from one base per block (14 -> 13
/// instructions per output on the Cortex-M4), then the rest. Callers with one weight row pass it
/// as both `a` and `b`.
#[inline(always)]
fn each4<C: Copy>(m: &[C], q: &[u32], a: &[u32], b: &[u32], y: &mut [f32], f: impl Fn(C, u32, u32, u32) -> f32) {
    let n = m.len().min(q.len()).min(a.len()).min(b.len()).min(y.len());
    let (Some(m), Some(q), Some(a), Some(b), Some(y)) =
        (m.get(..n), q.get(..n), a.get(..n), b.get(..n), y.get_mut(..n))
    else {
        return;
    };
    let ((m4, m1), (q4, q1), (a4, a1), (b4, b1)) =
        (m.as_chunks::<4>(), q.as_chunks::<4>(), a.as_chunks::<4>(), b.as_chunks::<4>());
    let (y4, y1) = y.as_chunks_mut::<4>();
    for ((((m, q), a), b), y) in m4.iter().zip(q4).zip(a4).zip(b4).zip(y4) {
        for ((((y, &m), &q), &a), &b) in y.iter_mut().zip(m).zip(q).zip(a).zip(b) {
            *y = f(m, q, a, b);
        }
    }
    for ((((y, &m), &q), &a), &b) in y1.iter_mut().zip(m1).zip(q1).zip(a1).zip(b1) {
        *y = f(m, q, a, b);
    }
}
