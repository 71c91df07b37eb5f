//! The binary conv over dense bit rows: the device's kernel on targets with a popcount instruction
//! and, on the Cortex-M4, where the bit-lane kernel does not pay (`super::use_lanes`).
//!
//! The packed weights keep one word group per tap (`[c_out, k*k, ceil(c_in/32)]`), so a 3x3 conv
//! over 12 channels spends 9 words on 108 bits. Here each kernel row (the `k` taps of one `ky`,
//! `k*c_in` bits back to back) is one dense bit string of `row_words = ceil(k*c_in/32)` words:
//! - the weights are repacked that way once per call (`[c_out, k, row_words]`);
//! - the input is gathered once per call into "windows": for output column `ox` and input row
//!   `iy`, the `k` taps `ix = ox*stride - pad + kx*dil` back to back (taps outside the image are
//!   0 bits), laid out `[w_out, dil, ceil(h_in/dil), row_words]` (row `iy` at `iy % dil`,
//!   `iy / dil`), so that the kernel rows of one output pixel, `iy0, iy0 + dil, ...`, lie back to
//!   back: an output pixel's im2col row is a sub-slice of the windows, never copied, and kernel
//!   rows outside the image are left out of it, not counted.
//!
//! Taps outside the image contribute exactly 0, as zero padding after sign does in the float
//! network: a skipped kernel row is simply not counted, and in a column whose window reaches
//! outside the image the count is masked to the taps inside (`popcount((x ^ w) & mask)`), so
//! `s = n_valid_bits - 2 * popcount` sums +-1 over the valid taps only.

use super::{out_width, tap_range, Shape};
use crate::format::{words_for, BITS};
use crate::model::ConvGeom;
use crate::popcount::{xor_popcount, xor_popcount_masked};

/// Words of one dense kernel row: `ceil(k * c_in / 32)`.
pub fn row_words(c_in: usize, k: usize) -> usize {
    (k.saturating_mul(c_in)).div_ceil(BITS)
}

/// Work words [`bin_conv_dense`] needs besides the input bits, in units of `row_words`: repacked
/// weights `c_out*k`, input windows `w_out*dil*ceil(h_in/dil)` and column masks `w_out*k`.
pub fn dense_work_words(c_in: usize, c_out: usize, g: ConvGeom, h_in: usize, w_in: usize) -> usize {
    let (rw, w_out) = (row_words(c_in, g.k), out_width(w_in, g));
    let window_rows = w_out.saturating_mul(h_in.div_ceil(g.dil.max(1)).saturating_mul(g.dil.max(1)));
    c_out.saturating_mul(g.k).saturating_add(window_rows).saturating_add(w_out.saturating_mul(g.k)).saturating_mul(rw)
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
    /// Appends `n` bits taken from `src` (LSB first), or `n` bits of `fill` where `src` is `None`.
    #[inline(always)]
    fn push_bits(&mut self, src: Option<&[u32]>, fill: u32, n: usize) {
        if n <= BITS {
            // One word (c_in <= 32, the common case): no loop.
            let v = match src {
                Some(s) => s.first().copied().unwrap_or(0),
                None => fill,
            };
            self.push(v & (u32::MAX >> (BITS - n.max(1))), n as u32);
            return;
        }
        let mut left = n;
        let mut words = src.unwrap_or(&[]).iter();
        while left > 0 {
            let take = left.min(BITS) as u32;
            let low = u32::MAX >> (32 - take);
            let v = if src.is_some() { words.next().copied().unwrap_or(0) } else { fill };
            self.push(v & low, take);
            left -= take as usize;
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
    let (d, hq) = (g.dil.max(1), xs.h.div_ceil(g.dil.max(1)));
    let Some((weights, rest)) = work.split_at_mut_checked(os.c * k * rw) else { return };
    let Some((windows, rest)) = rest.split_at_mut_checked(os.w * d * hq * rw) else { return };
    let Some((col_masks, _)) = rest.split_at_mut_checked(os.w * k * rw) else { return };
    // Weights: each (o, ky) kernel row's k taps back to back.
    for (w_row, taps) in weights.chunks_exact_mut(rw).zip(packed.chunks_exact(k * wpt)) {
        let mut sink = BitSink::new(w_row);
        taps.chunks_exact(wpt).for_each(|t| sink.push_bits(Some(t), 0, xs.c));
        sink.finish();
    }
    let ohw = os.hw();
    if k == 1 && g.pad == 0 && g.stride == 1 && os.hw() == xs.hw() && rw == wpt {
        // A 1x1 conv: each pixel's packed bits already are its dense row.
        for (p, x) in bits.chunks_exact(rw).take(ohw).enumerate() {
            let filters = Filters { weights, stride: rw, range: 0..rw };
            pixel(x, None, xs.c as i32, filters, scale, out, ohw.max(1), p);
        }
        return;
    }
    // Input column of tap kx for output column ox, if inside the image.
    let col = |ox: usize, kx: usize| -> Option<usize> {
        (ox * g.stride + kx * g.dil).checked_sub(g.pad).filter(|&ix| ix < xs.w)
    };
    // Column masks, k copies each (one per kernel row), so a pixel's mask is a plain sub-slice.
    for (ox, mask) in col_masks.chunks_exact_mut(k * rw).enumerate() {
        for seg in mask.chunks_exact_mut(rw) {
            let mut sink = BitSink::new(seg);
            (0..k).for_each(|kx| sink.push_bits(None, if col(ox, kx).is_some() { u32::MAX } else { 0 }, xs.c));
            sink.finish();
        }
    }
    // Windows `[w_out, dil, ceil(h_in/dil), row_words]`: input row iy at (iy % dil, iy / dil), so
    // the kernel rows of one output pixel (iy0, iy0 + dil, ...) lie back to back: its im2col row
    // is a sub-slice, never copied.
    for (i, window) in windows.chunks_exact_mut(rw).enumerate() {
        let (ox, iy) = (i / (d * hq), (i % (d * hq)) % hq * d + (i % (d * hq)) / hq);
        let mut sink = BitSink::new(window);
        if iy < xs.h {
            for kx in 0..k {
                let src = col(ox, kx).and_then(|ix| bits.get((iy * xs.w + ix) * wpt..(iy * xs.w + ix + 1) * wpt));
                sink.push_bits(src, 0, xs.c);
            }
        }
        sink.finish();
    }
    for ox in 0..os.w {
        let kx_valid = {
            let (kx0, kx1) = tap_range(ox, xs.w, g);
            kx1 - kx0
        };
        let col_mask = col_masks.get(ox * k * rw..(ox + 1) * k * rw).unwrap_or(&[]);
        let col_windows = windows.get(ox * d * hq * rw..(ox + 1) * d * hq * rw).unwrap_or(&[]);
        for oy in 0..os.h {
            // Kernel rows inside the image: ky in ky0..ky1.
            let top = (oy * g.stride) as isize - g.pad as isize;
            let (ky0, ky1) = tap_range(oy, xs.h, g);
            let n = (ky1 - ky0) * rw;
            let iy0 = (top + (ky0 * d) as isize).max(0) as usize;
            let at = ((iy0 % d) * hq + iy0 / d) * rw;
            let x = col_windows.get(at..at + n).unwrap_or(&[]);
            let mask = if kx_valid < k { Some(col_mask.get(..n).unwrap_or(&[])) } else { None };
            let full = ((ky1 - ky0) * kx_valid * xs.c) as i32;
            let filters = Filters { weights, stride: k * rw, range: ky0 * rw..ky1 * rw };
            pixel(x, mask, full, filters, scale, out, ohw.max(1), oy * os.w + ox);
        }
    }
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
#[allow(clippy::too_many_arguments)]
fn pixel(
    x: &[u32],
    mask: Option<&[u32]>,
    full: i32,
    f: Filters<'_>,
    scale: &[f32],
    out: &mut [f32],
    ohw: usize,
    p: usize,
) {
    let filters = f.weights.chunks_exact(f.stride).map(|w| w.get(f.range.clone()).unwrap_or(&[]));
    let outs = out.chunks_exact_mut(ohw).zip(scale);
    match mask {
        None => {
            for ((o, &sc), w) in outs.zip(filters) {
                if let Some(o) = o.get_mut(p) {
                    *o = super::relu((full - 2 * xor_popcount(x, w) as i32) as f32 * sc);
                }
            }
        }
        Some(m) => {
            for ((o, &sc), w) in outs.zip(filters) {
                if let Some(o) = o.get_mut(p) {
                    *o = super::relu((full - 2 * xor_popcount_masked(x, w, m) as i32) as f32 * sc);
                }
            }
        }
    }
}
