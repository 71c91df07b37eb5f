//! 3x3 pools, pad 1, any stride: max (padding never wins) and average (padding not counted).
//!
//! Both read a window's taps row-major, as the definitions do, and give the same bits:
//! - The max keeps the first of equal values (`v > m` replaces, so a NaN never wins and of +0
//!   and -0 the first stays). Taking the first maximum of each row's 3 columns, then the first
//!   maximum of those over the 3 rows in order, picks the same tap as one row-major pass: the
//!   first row holding the window's maximum, and in it the first column holding it. So the max
//!   runs in two passes, each input row's horizontal maxima computed once and kept for the (up
//!   to 3) output rows that read it.
//! - The average adds the taps row-major from 0.0 (float addition does not reassociate), then
//!   multiplies by `1/n` rounded to f32 ([`reciprocal`]). (A sum that comes out NaN is some NaN:
//!   Rust leaves a computed NaN's payload unspecified.)

use super::{full_windows, Shape};
use crate::model::ConvGeom;
use core::ops::Range;

/// `1 / n` rounded to f32: an average pool multiplies by it, which costs a multiply instead of a
/// divide and is one rounding that every runtime (tract's `Mul`, the WGSL kernel) reproduces.
pub fn reciprocal(n: usize) -> f32 {
    1.0 / n.max(1) as f32
}

/// `m = v` if `v > m`: the max pool's step.
#[inline(always)]
fn keep_max(m: f32, v: f32) -> f32 {
    if v > m {
        v
    } else {
        m
    }
}

/// Output columns per strip of the max pool's row buffers.
const STRIP: usize = 32;

/// The output positions whose 3 taps all lie inside `0..n_in` (stride `s`, pad 1).
fn inner(n_out: usize, n_in: usize, s: usize) -> Range<usize> {
    full_windows(n_out, n_in, ConvGeom { k: 3, stride: s, pad: 1, dil: 1 })
}

/// The input rows of output row `oy`: `oy*s - 1 ..= oy*s + 1`, those inside `0..h`.
fn window_rows(oy: usize, s: usize, h: usize) -> Range<usize> {
    (oy * s).saturating_sub(1)..(oy * s + 2).min(h)
}

/// 3x3 max pool, pad 1: the max over valid taps, row-major (`v > m` replaces, so a NaN never wins
/// and the first of equal values stays).
pub fn max_pool(x: &[f32], xs: Shape, stride: usize, out: &mut [f32], os: Shape) {
    let s = stride.max(1);
    let cols_in = inner(os.w, xs.w, s);
    for (x_c, o_c) in x.chunks_exact(xs.hw().max(1)).zip(out.chunks_exact_mut(os.hw().max(1))) {
        for ox0 in (0..os.w).step_by(STRIP) {
            let strip = ox0..(ox0 + STRIP).min(os.w);
            // The horizontal maxima of the last three input rows computed, oldest first: each
            // new row goes into the oldest's buffer, which then becomes the newest (a row is read
            // only after it is computed for this strip; the buffers on the stack here cost fewer
            // instructions than ones kept across strips, measured).
            let mut rows = [[f32::NEG_INFINITY; STRIP]; 3];
            let [mut h0, mut h1, mut h2] = rows.each_mut();
            let mut x_rows = x_c.chunks_exact(xs.w.max(1));
            let mut done = 0;
            for (oy, o_row) in o_c.chunks_exact_mut(os.w.max(1)).enumerate().take(os.h) {
                let r = window_rows(oy, s, xs.h);
                while done < r.end {
                    let Some(x_row) = x_rows.next() else { break };
                    (h0, h1, h2) = (h1, h2, h0);
                    row_maxima(x_row, s, strip.clone(), &cols_in, h2);
                    done += 1;
                }
                let Some(dst) = o_row.get_mut(strip.clone()) else { continue };
                match r.len() {
                    // A row maximum is never NaN (its fold starts at -inf and a NaN never wins),
                    // so the fold over the rows may start at the first one.
                    3 => {
                        for (((d, &a), &b), &c) in dst.iter_mut().zip(&*h0).zip(&*h1).zip(&*h2) {
                            *d = keep_max(keep_max(a, b), c);
                        }
                    }
                    2 => {
                        for ((d, &a), &b) in dst.iter_mut().zip(&*h1).zip(&*h2) {
                            *d = keep_max(a, b);
                        }
                    }
                    _ => dst.iter_mut().zip(&*h2).for_each(|(d, &a)| *d = a),
                }
            }
        }
    }
}

/// `keep_max(-inf, a)`: `a`, or -inf where `a` is NaN (a NaN never wins), as one compare.
#[inline(always)]
fn first(a: f32) -> f32 {
    if a.is_nan() {
        f32::NEG_INFINITY
    } else {
        a
    }
}

/// The first maximum of one row's taps (1 to 3 of them, in order), from -inf.
#[inline(always)]
fn row_max(taps: &[f32]) -> f32 {
    match *taps {
        [a] => first(a),
        [a, b] => keep_max(first(a), b),
        [a, b, c] => keep_max(keep_max(first(a), b), c),
        _ => f32::NEG_INFINITY,
    }
}

/// `sum` plus one row's taps (1 to 3 of them), in order.
#[inline(always)]
fn add_row(sum: f32, taps: &[f32]) -> f32 {
    match *taps {
        [a] => sum + a,
        [a, b] => sum + a + b,
        [a, b, c] => sum + a + b + c,
        _ => sum,
    }
}

/// `h[ox - cols.start]` for `ox` in `cols`: the first maximum of one row's input columns
/// `ox*s - 1 ..= ox*s + 1` (those inside the row), from -inf; `inner` are the outputs with all 3
/// inside.
fn row_maxima(x_row: &[f32], s: usize, cols: Range<usize>, inner: &Range<usize>, h: &mut [f32]) {
    let lo = inner.start.clamp(cols.start, cols.end);
    let mid = lo..inner.end.clamp(lo, cols.end);
    // The border columns (one at each end at most, with pad 1): their taps inside the row.
    let border = |ox: usize, h: &mut [f32]| {
        let c = ox * s;
        let taps = x_row.get(c.saturating_sub(1)..(c + 2).min(x_row.len())).unwrap_or(&[]);
        if let Some(h) = h.get_mut(ox - cols.start) {
            *h = row_max(taps);
        }
    };
    for ox in cols.start..mid.start {
        border(ox, h);
    }
    for ox in mid.end..cols.end {
        border(ox, h);
    }
    let (Some(h), Some(x)) = (
        h.get_mut(mid.start - cols.start..mid.end.saturating_sub(cols.start)),
        x_row.get((mid.start * s).saturating_sub(1)..),
    ) else {
        return;
    };
    // (`step_by` with a run-time step costs a call per item; stride 1 goes without.)
    if s == 1 {
        h.iter_mut().zip(x.windows(3)).for_each(|(h, w)| *h = row_max(w));
    } else {
        h.iter_mut().zip(x.windows(3).step_by(s)).for_each(|(h, w)| *h = row_max(w));
    }
}

/// 3x3 average pool, pad 1, padded taps not counted: sum of valid taps row-major (from 0.0),
/// times [`reciprocal`] of their count.
pub fn avg_pool(x: &[f32], xs: Shape, stride: usize, out: &mut [f32], os: Shape) {
    let s = stride.max(1);
    let inv: [f32; 10] = core::array::from_fn(reciprocal);
    let (cols_in, w) = (inner(os.w, xs.w, s), xs.w.max(1));
    for (x_c, o_c) in x.chunks_exact(xs.hw().max(1)).zip(out.chunks_exact_mut(os.hw().max(1))) {
        for (oy, o_row) in o_c.chunks_exact_mut(os.w.max(1)).enumerate().take(os.h) {
            let r = window_rows(oy, s, xs.h);
            let rows = x_c.get(r.start * w..r.end * w).unwrap_or(&[]);
            // The border columns (one at each end at most, with pad 1): their taps inside the row.
            let mut border = |ox: usize| {
                let c = ox * s;
                let taps = c.saturating_sub(1)..(c + 2).min(xs.w);
                let n = r.len() * taps.len();
                let sum =
                    rows.chunks_exact(w).fold(0.0f32, |sum, row| add_row(sum, row.get(taps.clone()).unwrap_or(&[])));
                if let Some(o) = o_row.get_mut(ox) {
                    *o = sum * inv.get(n).copied().unwrap_or(1.0);
                }
            };
            for ox in 0..cols_in.start.min(os.w) {
                border(ox);
            }
            for ox in cols_in.end..os.w {
                border(ox);
            }
            // The columns with all 3 taps inside: 3 taps per row, rows in order.
            let Some(y) = o_row.get_mut(cols_in.clone()) else { continue };
            let at = (cols_in.start * s).saturating_sub(1);
            let [a, b, c] = [0, 1, 2].map(|i| rows.get(i * w + at..(i + 1) * w).unwrap_or(&[]).windows(3));
            let inv = inv.get(3 * r.len()).copied().unwrap_or(1.0);
            // (`step_by` with a run-time step costs a call per item; stride 1 goes without.)
            match (r.len(), s) {
                (3, 1) => sum_rows(y, a.zip(b).zip(c).map(|((a, b), c)| [a, b, c]), inv),
                (3, _) => {
                    sum_rows(y, a.step_by(s).zip(b.step_by(s)).zip(c.step_by(s)).map(|((a, b), c)| [a, b, c]), inv)
                }
                (2, 1) => sum_rows(y, a.zip(b).map(|(a, b)| [a, b]), inv),
                (2, _) => sum_rows(y, a.step_by(s).zip(b.step_by(s)).map(|(a, b)| [a, b]), inv),
                (_, 1) => sum_rows(y, a.map(|a| [a]), inv),
                _ => sum_rows(y, a.step_by(s).map(|a| [a]), inv),
            }
        }
    }
}

/// `y = (0 + the taps, row-major) * inv` for each output and its rows' windows of 3 taps.
#[inline(always)]
fn sum_rows<'a, const R: usize>(y: &mut [f32], windows: impl Iterator<Item = [&'a [f32]; R]>, inv: f32) {
    for (y, rows) in y.iter_mut().zip(windows) {
        let sum = rows.iter().fold(0.0f32, |sum, w| add_row(sum, w));
        *y = sum * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both pools against the reference interpreter's definition on random shapes (rows up to 3 strips wide), strides
    /// 1-3, with exact ties of +0 and -0, infinities and NaNs among the values.
    #[test]
    fn pools_are_bit_identical_to_the_reference() {
        let mut next = crate::xorshift32(0x9E37_79B9);
        let mut below = |n: u32| (next() % n) as usize;
        for case in 0..400 {
            let stride = 1 + below(3);
            let xs = Shape { c: 1 + below(3), h: 1 + below(20), w: 1 + below(3 * STRIP as u32 * stride as u32) };
            let os = Shape { c: xs.c, h: (xs.h - 1) / stride + 1, w: (xs.w - 1) / stride + 1 };
            let x: Vec<f32> = (0..xs.c * xs.hw())
                .map(|_| match below(12) {
                    0 => 0.0,
                    1 => -0.0,
                    2 if case % 4 == 0 => f32::NAN,
                    3 if case % 3 == 0 => f32::NEG_INFINITY,
                    4 if case % 5 == 0 => f32::INFINITY,
                    _ => below(1 << 20) as f32 / (1 << 19) as f32 - 1.0,
                })
                .collect();
            for is_max in [true, false] {
                let mut out = vec![1.5; os.c * os.hw()];
                if is_max {
                    max_pool(&x, xs, stride, &mut out, os);
                } else {
                    avg_pool(&x, xs, stride, &mut out, os);
                }
                let want = crate::reference::pool3x3(&x, (xs.c, xs.h, xs.w), stride, (os.h, os.w), is_max);
                assert_eq!(out.len(), want.len());
                // Identical bits, except that a NaN may be any NaN: Rust leaves the payload and
                // sign of a NaN produced by arithmetic unspecified (they depend on the operand
                // order the compiler picks for a commutative add, and on the target).
                let same = |(a, b): (&f32, &f32)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                if let Some(i) = out.iter().zip(&want).position(|p| !same(p)) {
                    panic!("case {case} max {is_max}: {xs:?} stride {stride}: at {i} {} vs {}", out[i], want[i]);
                }
            }
        }
    }
}
