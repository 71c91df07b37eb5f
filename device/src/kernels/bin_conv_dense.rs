//! The binary conv over dense bit rows: the device's kernel on targets with a popcount instruction
//! and, on the Cortex-M4, where the bit-lane kernel does not pay (`super::use_lanes`).
//!
//! The packed weights keep one word group per tap (`[c_out, k*k, ceil(c_in/32)]`), so a 3x3 conv
//! over 12 channels spends 9 words on 108 bits. Here the output columns go in runs that share
//! their kernel columns inside the image, `kx0..kx1` (the interior is one run, and each border
//! column with its own tap range another). For a run, each kernel row (its `v = kx1 - kx0` taps
//! of one `ky`, `v*c_in` bits back to back) is one dense bit string of `ceil(v*c_in/32)` words:
//! - the weights are repacked that way once per run (`[c_out, k, words]`);
//! - the input is gathered once per run into "windows": for output column `ox` and input row
//!   `iy`, the taps `ix = ox*stride - pad + kx*dil`, `kx0 <= kx < kx1`, back to back, laid out
//!   `[column, dil, ceil(h_in/dil), words]` (row `iy` at `iy % dil`, `iy / dil`), so that the
//!   kernel rows of one output pixel, `iy0, iy0 + dil, ...`, lie back to back: an output pixel's
//!   im2col row is a sub-slice of the windows, never copied, and kernel rows outside the image
//!   are left out of it, not counted.
//!
//! Taps outside the image contribute exactly 0, as zero padding after sign does in the float
//! network: they are in no bit string, so `s = n_valid_bits - 2 * popcount(x ^ w)` sums +-1 over
//! the valid taps only. No word is masked, and a border column counts only its own taps' words
//! (at 7x7 with a 5x5 kernel at dilation 2, 5.3 words per kernel row instead of 8 at 48 channels).

use super::{out_width, tap_range, Shape};
use crate::format::{words_for, BITS};
use crate::model::ConvGeom;
use crate::popcount::xor_popcount;

/// Words of one dense kernel row: `ceil(k * c_in / 32)`.
pub fn row_words(c_in: usize, k: usize) -> usize {
    (k.saturating_mul(c_in)).div_ceil(BITS)
}

/// Work words [`bin_conv_dense`] needs besides the input bits, in units of `row_words` (a run's
/// rows are no longer): repacked weights `c_out*k` and input windows `w_out*dil*ceil(h_in/dil)`.
pub fn dense_work_words(c_in: usize, c_out: usize, g: ConvGeom, h_in: usize, w_in: usize) -> usize {
    let (rw, w_out) = (row_words(c_in, g.k), out_width(w_in, g));
    let window_rows = w_out.saturating_mul(h_in.div_ceil(g.dil.max(1)).saturating_mul(g.dil.max(1)));
    c_out.saturating_mul(g.k).saturating_add(window_rows).saturating_mul(rw)
}

/// Appends bit strings to a word slice, LSB first; words it never reaches are left alone.
struct BitSink<'a> {
    out: core::slice::IterMut<'a, u32>,
    cur: u32,
    fill: u32,
}

impl<'a> BitSink<'a> {
    fn new(out: &'a mut [u32]) -> Self {
        Self { out: out.iter_mut(), cur: 0, fill: 0 }
    }
    /// Appends the low `n` bits of `v` (1 <= n <= 32; `v`'s bits above `n` must be 0).
    #[inline(always)]
    fn push(&mut self, v: u32, n: u32) {
        self.cur |= v << self.fill;
        let end = self.fill + n;
        if end >= 32 {
            if let Some(d) = self.out.next() {
                *d = self.cur;
            }
            self.cur = v.checked_shr(32 - self.fill).unwrap_or(0);
            self.fill = end - 32;
        } else {
            self.fill = end;
        }
    }
    /// Appends a whole word: the fill is unchanged.
    #[inline(always)]
    fn push_word(&mut self, v: u32) {
        self.cur |= v << self.fill;
        if let Some(d) = self.out.next() {
            *d = self.cur;
        }
        self.cur = v.checked_shr(32 - self.fill).unwrap_or(0);
    }
    /// Appends one tap's channel bits: `src`'s words, the last one cut to `t.last` bits.
    #[inline(always)]
    fn push_tap(&mut self, src: &[u32], t: Tap) {
        if let Some((&last, full)) = src.split_last() {
            full.iter().for_each(|&v| self.push_word(v));
            self.push(last & t.mask, t.last);
        }
    }
    /// Writes the partial last word and zeroes the words after it.
    fn finish(mut self) {
        if self.fill > 0 {
            if let Some(d) = self.out.next() {
                *d = self.cur;
            }
        }
        self.out.for_each(|d| *d = 0);
    }
}

/// How a tap's `ceil(c_in/32)` words hold its `c_in` channel bits: all of every word but the last,
/// `last` (1..=32) bits of that one, under `mask`.
#[derive(Clone, Copy)]
struct Tap {
    last: u32,
    mask: u32,
}

impl Tap {
    fn new(c_in: usize) -> Self {
        let last = (c_in.saturating_sub(1) % BITS + 1) as u32;
        Tap { last, mask: u32::MAX >> (32 - last) }
    }
}

/// XNOR-popcount conv over packed bits `[h_in*w_in, words]` (as [`super::binarize`] writes them)
/// with weights `[c_out, k*k, words]`, `words = ceil(c_in/32)`, through dense kernel rows (see the
/// module docs). `work` needs [`dense_work_words`] words. `out[o, p] = relu(s as f32 * scale[o])`
/// with `s` the sum of +-1 products over the taps inside the image, exactly as [`super::bin_conv`].
#[allow(clippy::too_many_arguments)]
pub fn bin_conv_dense(
    bits: &[u32],
    xs: Shape,
    g: ConvGeom,
    scale: &[f32],
    packed: &[u32],
    work: &mut [u32],
    out: &mut [f32],
    os: Shape,
) {
    let (wpt, rw, k) = (words_for(xs.c), row_words(xs.c, g.k), g.k);
    if wpt == 0 || rw == 0 || work.len() < dense_work_words(xs.c, os.c, g, xs.h, xs.w) || out_width(xs.w, g) != os.w {
        return;
    }
    let Some((weights, windows)) = work.split_at_mut_checked(os.c * k * rw) else { return };
    let ohw = os.hw();
    if k == 1 && g.pad == 0 && g.stride == 1 && os.hw() == xs.hw() && rw == wpt {
        // A 1x1 conv: each pixel's packed bits already are its dense row.
        repack_weights(packed, k, wpt, 0..1, xs.c, rw, weights);
        for (p, x) in bits.chunks_exact(rw).take(ohw).enumerate() {
            let filters = Filters { weights, stride: rw, range: 0..rw };
            pixel(x, xs.c as i32, filters, scale, out, ohw.max(1), p);
        }
        return;
    }
    // The columns in runs of one tap range kx0..kx1 (both ends only fall as ox grows, so each
    // range is one run): a run's kernel rows hold only its taps inside the image, so no word is
    // masked and none is all padding.
    let (mut ox, mut held) = (0, 0..0);
    while ox < os.w {
        let taps = tap_range(ox, xs.w, g);
        let end = (ox + 1..os.w).find(|&c| tap_range(c, xs.w, g) != taps).unwrap_or(os.w);
        let cols = Columns { bits, xs, g, cols: ox..end, taps: taps.0..taps.1 };
        // The weights' rows for this run's taps: cut from the last run's where they are a prefix of
        // them (the right border's runs, kx1 falling), else repacked.
        let (v, rw) = (taps.1 - taps.0, row_words(xs.c, taps.1 - taps.0));
        if held.start == taps.0 && held.end > taps.1 && v > 0 && RowFormat::of(xs.c) == RowFormat::Bits {
            cut_rows(weights, os.c * k, row_words(xs.c, held.len()), rw, v * xs.c);
        } else if v > 0 {
            repack_weights(packed, k, wpt, taps.0..taps.1, xs.c, rw, weights);
        }
        held = taps.0..taps.1;
        cols.run(scale, weights, windows, out, os);
        ox = end;
    }
}

/// How [`repack_weights`] lays a tap's channel bits into a kernel row. The first two move whole
/// words and cost less than cutting the last run's rows down ([`cut_rows`]: a `memmove` a row).
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowFormat {
    /// Channels a multiple of 32: the taps' words as they are.
    Words,
    /// 48 channels: two taps fill three words.
    Pairs48,
    /// Any other count: bit by bit, with a running fill.
    Bits,
}

impl RowFormat {
    fn of(c_in: usize) -> Self {
        if c_in.is_multiple_of(BITS) {
            RowFormat::Words
        } else if c_in == 48 {
            RowFormat::Pairs48
        } else {
            RowFormat::Bits
        }
    }
}

/// Cuts `rows` weight rows of `from` words each to their first `bits` bits, `to` words each, in
/// place (rows only shrink, so each word moves down or stays).
fn cut_rows(weights: &mut [u32], rows: usize, from: usize, to: usize, bits: usize) {
    if to > from {
        return;
    }
    if from != to {
        for r in 1..rows.min(weights.len() / from.max(1)) {
            weights.copy_within(r * from..r * from + to, r * to);
        }
    }
    let last = u32::MAX >> ((BITS - bits % BITS) % BITS);
    for row in weights.chunks_exact_mut(to.max(1)).take(rows) {
        if let Some(w) = row.last_mut() {
            *w &= last;
        }
    }
}

/// A run of output columns `cols` whose taps inside the image are `taps` (kernel columns).
struct Columns<'a> {
    bits: &'a [u32],
    xs: Shape,
    g: ConvGeom,
    cols: core::ops::Range<usize>,
    taps: core::ops::Range<usize>,
}

impl Columns<'_> {
    /// Writes the run's outputs, with `weights` holding its kernel rows (`[c_out, k, words]`).
    fn run(&self, scale: &[f32], weights: &[u32], windows: &mut [u32], out: &mut [f32], os: Shape) {
        let (xs, g, k) = (self.xs, self.g, self.g.k);
        let (wpt, v) = (words_for(xs.c), self.taps.len());
        // Words of one kernel row cut to the run's taps.
        let rw = row_words(xs.c, v);
        let (d, hq, ohw) = (g.dil.max(1), xs.h.div_ceil(g.dil.max(1)), os.hw().max(1));
        if rw == 0 {
            // No tap inside the image: every sum is 0.
            for ox in self.cols.clone() {
                for (o, &sc) in out.chunks_exact_mut(ohw).zip(scale) {
                    for y in o.iter_mut().skip(ox).step_by(os.w.max(1)) {
                        *y = super::relu(0.0 * sc);
                    }
                }
            }
            return;
        }
        // Windows `[column of the run, dil, ceil(h_in/dil), rw]`: input row iy at (iy % dil,
        // iy / dil), so the kernel rows of one output pixel (iy0, iy0 + dil, ...) lie back to
        // back: its im2col row is a sub-slice, never copied.
        let (per_col, tap) = (d * hq * rw, Tap::new(xs.c));
        for (ox, col) in self.cols.clone().zip(windows.chunks_exact_mut(per_col)) {
            let ix0 = (ox * g.stride + self.taps.start * g.dil).saturating_sub(g.pad);
            for (i, window) in col.chunks_exact_mut(rw).enumerate() {
                let iy = i % hq * d + i / hq;
                let mut sink = BitSink::new(window);
                if iy < xs.h {
                    for t in 0..v {
                        let p = iy * xs.w + ix0 + t * g.dil;
                        sink.push_tap(self.bits.get(p * wpt..(p + 1) * wpt).unwrap_or(&[]), tap);
                    }
                }
                sink.finish();
            }
        }
        for (ox, col) in self.cols.clone().zip(windows.chunks_exact(per_col)) {
            for oy in 0..os.h {
                // Kernel rows inside the image: ky in ky0..ky1.
                let top = (oy * g.stride) as isize - g.pad as isize;
                let (ky0, ky1) = tap_range(oy, xs.h, g);
                let iy0 = (top + (ky0 * d) as isize).max(0) as usize;
                let at = ((iy0 % d) * hq + iy0 / d) * rw;
                let x = col.get(at..at + (ky1 - ky0) * rw).unwrap_or(&[]);
                let full = ((ky1 - ky0) * v * xs.c) as i32;
                let filters = Filters { weights, stride: k * rw, range: ky0 * rw..ky1 * rw };
                pixel(x, full, filters, scale, out, ohw, oy * os.w + ox);
            }
        }
    }
}

/// Writes each (o, ky) kernel row's taps `taps` (of `k`, `wpt` words each in `packed`) back to
/// back into `rw` words of `weights`, `[c_out, k, rw]`.
#[inline(never)]
fn repack_weights(
    packed: &[u32],
    k: usize,
    wpt: usize,
    taps: core::ops::Range<usize>,
    c_in: usize,
    rw: usize,
    weights: &mut [u32],
) {
    let tap = Tap::new(c_in);
    let rows = weights.chunks_exact_mut(rw).zip(packed.chunks_exact(k * wpt));
    let (from, to) = (taps.start * wpt, taps.end * wpt);
    // The row's taps `taps`.
    fn cut(row: &[u32], from: usize, to: usize) -> &[u32] {
        row.get(from..to).unwrap_or(&[])
    }
    match (RowFormat::of(c_in), wpt) {
        (RowFormat::Words, _) => rows.for_each(|(w_row, row)| copy_row(cut(row, from, to), w_row)),
        (RowFormat::Pairs48, _) => rows.for_each(|(w_row, row)| repack_halves(cut(row, from, to).as_chunks().0, w_row)),
        // Up to 64 channels: each tap's words are one fixed-size chunk, in registers.
        (_, 1) => rows.for_each(|(w_row, row)| repack_row::<1>(cut(row, from, to).as_chunks().0, tap, w_row)),
        (_, 2) => rows.for_each(|(w_row, row)| repack_row::<2>(cut(row, from, to).as_chunks().0, tap, w_row)),
        _ => {
            for (w_row, row) in rows {
                let mut sink = BitSink::new(w_row);
                cut(row, from, to).chunks_exact(wpt).for_each(|t| sink.push_tap(t, tap));
                sink.finish();
            }
        }
    }
}

/// One kernel row of [`repack_weights`] for taps of whole words: the words as they are, then
/// zeros.
fn copy_row(taps: &[u32], w_row: &mut [u32]) {
    let n = taps.len().min(w_row.len());
    let (head, tail) = w_row.split_at_mut(n);
    if let Some(taps) = taps.get(..n) {
        head.copy_from_slice(taps);
    }
    tail.fill(0);
}

/// One kernel row of [`repack_weights`] for taps of 48 channels (two words a tap, the second
/// holding 16 channels): a pair of taps is 3 whole words (the first tap's first word, its last 16
/// channels with the second tap's first 16, then the second tap's other 32), so every shift is
/// fixed (~6 instructions a tap on the Cortex-M4 where [`repack_row`] takes ~33). A last odd tap
/// ends in a half word; zeros after it.
fn repack_halves(taps: &[[u32; 2]], w_row: &mut [u32]) {
    let (pairs, odd) = taps.as_chunks::<2>();
    let (words, _) = w_row.as_chunks_mut::<3>();
    for (&[[a0, a1], [b0, b1]], w) in pairs.iter().zip(words.iter_mut()) {
        let (a1, b1) = (a1 & 0xFFFF, b1 & 0xFFFF);
        *w = [a0, a1 | b0 << 16, b0 >> 16 | b1 << 16];
    }
    let mut rest = w_row.get_mut(3 * pairs.len()..).unwrap_or(&mut []).iter_mut();
    for (d, v) in (&mut rest).zip(odd.iter().flat_map(|&[a0, a1]| [a0, a1 & 0xFFFF])) {
        *d = v;
    }
    rest.for_each(|d| *d = 0);
}

/// One kernel row of [`repack_weights`] for taps of `N` words: the fill stays under 32 by
/// construction, so its shifts need no checks.
#[inline(always)]
fn repack_row<const N: usize>(cut: &[[u32; N]], tap: Tap, w_row: &mut [u32]) {
    let mut out = w_row.iter_mut();
    // `cur` holds the low `fill` bits of the next word (0 <= fill < 32).
    let (mut cur, mut fill) = (0u32, 0u32);
    for t in cut {
        let Some((&last, full)) = t.split_last() else { continue };
        for &v in full {
            if let Some(d) = out.next() {
                *d = cur | v << fill;
            }
            cur = (v >> 1) >> (31 - fill);
        }
        let v = last & tap.mask;
        cur |= v << fill;
        let end = fill + tap.last;
        if end >= 32 {
            if let Some(d) = out.next() {
                *d = cur;
            }
            cur = (v >> 1) >> (31 - fill);
        }
        fill = end & 31;
    }
    if fill > 0 {
        if let Some(d) = out.next() {
            *d = cur;
        }
    }
    out.for_each(|d| *d = 0);
}

/// Each filter's words for one pixel: words `range` of each `stride` words of `weights`.
struct Filters<'a> {
    weights: &'a [u32],
    stride: usize,
    range: core::ops::Range<usize>,
}

/// One output pixel for every filter: `out = relu((full - 2*popcount) as f32 * scale)`. Kept out
/// of line so the filter loop gets the registers to itself.
#[inline(never)]
fn pixel(x: &[u32], full: i32, f: Filters<'_>, scale: &[f32], out: &mut [f32], ohw: usize, p: usize) {
    let filters = f.weights.chunks_exact(f.stride).map(|w| w.get(f.range.clone()).unwrap_or(&[]));
    for ((o, &sc), w) in out.chunks_exact_mut(ohw).zip(scale).zip(filters) {
        if let Some(o) = o.get_mut(p) {
            *o = super::relu((full - 2 * xor_popcount(x, w) as i32) as f32 * sc);
        }
    }
}
