//! Full-precision kernels: stem and skip convs, BN affine, add, GAP, linear (the pools are in
//! `pool.rs`).

use super::{full_windows, reciprocal, valid_range, Shape};
use crate::model::ConvGeom;

/// `out[c, p] = x[c, p] * scale[c] + bias[c]` (BatchNorm in eval mode), CHW.
pub fn affine(x: &[f32], hw: usize, scale: &[f32], bias: &[f32], out: &mut [f32]) {
    let channels = x.chunks_exact(hw).zip(out.chunks_exact_mut(hw)).zip(scale.iter().zip(bias));
    for ((xc, oc), (&s, &b)) in channels {
        for (o, &v) in oc.iter_mut().zip(xc) {
            *o = v * s + b;
        }
    }
}

/// Output channels one pass over the input feeds: the accumulator of an output pixel is one
/// `[f32; LANES]` (SIMD lanes on a host, FPU registers on a Cortex-M4). The summation order of
/// each output does not depend on it, so targets with different `LANES` agree bit for bit.
#[cfg(not(target_os = "none"))]
const LANES: usize = 16;
#[cfg(target_os = "none")]
const LANES: usize = 8;
/// Output pixels per accumulator tile: whole output rows when they fit, else row pieces.
const TILE: usize = 32;
/// Taps per filter of the tiled conv (`k <= MAX_K = 7`, as `Model::parse` checks); larger
/// kernels take [`conv2d_planes`].
const MAX_TAPS: usize = 49;

/// The accumulators of one output pixel for `LANES` output channels.
type Acc = [f32; LANES];

/// `acc[l] += x * w[l]` for every lane.
#[inline(always)]
fn mac(acc: &mut Acc, x: f32, w: &Acc) {
    for (a, &wl) in acc.iter_mut().zip(w) {
        *a += x * wl;
    }
}

/// Direct conv. Per output element the sum runs `bias, then c, ky, kx ascending`; padded taps are
/// skipped (zero padding). `weights` is `[c_out, c_in, k, k]`; `out` is `[c_out, oh, ow]`. Every
/// path keeps that order, so the result is the same, bit for bit, as the naive loop's, on every
/// target: accumulator tiles (`conv2d_tiles`) on a host, register blocks first on the
/// Cortex-M4F (`conv2d_scalar_fpu`, `float_regs.rs`).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) {
    if cfg!(target_os = "none") {
        conv2d_scalar_fpu(x, xs, g, weights, bias, relu, out, os);
    } else {
        conv2d_tiles(x, xs, g, weights, bias, relu, out, os);
    }
}

/// [`conv2d`] on a scalar FPU (the Cortex-M4F): whole blocks of 4 output channels through
/// registers where [`super::float_regs`] takes the geometry, the rest through the tiles.
#[allow(clippy::too_many_arguments)]
fn conv2d_scalar_fpu(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) {
    let done = super::float_regs::conv2d_regs(x, xs, g, weights, bias, relu, out, os);
    let per_o = xs.c * g.k * g.k;
    let (w, b) = (weights.get(done * per_o..).unwrap_or(&[]), bias.map(|b| b.get(done..).unwrap_or(&[])));
    let (out, os) = (out.get_mut(done * os.hw()..).unwrap_or(&mut []), Shape { c: os.c.saturating_sub(done), ..os });
    conv2d_tiles(x, xs, g, w, b, relu, out, os);
}

/// [`conv2d`] through accumulator tiles: `LANES` output channels at a time, over tiles of up to
/// `TILE` output pixels. The tile's accumulators (`[pixel][lane]`, on the stack) start at the
/// bias; then for each input channel the block's `k*k` weights are gathered lane-major and each
/// input row feeds every output pixel of the tile, all lanes at once. The interior columns, where
/// every tap is inside the row, run without per-tap checks.
#[allow(clippy::too_many_arguments)]
fn conv2d_tiles(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) {
    let (k, s, d) = (g.k, g.stride, g.dil);
    let (kk, ihw, ohw) = (k * k, xs.hw(), os.hw());
    if k > MAX_K || kk == 0 || s == 0 || d == 0 || ihw == 0 || ohw == 0 || os.w == 0 {
        conv2d_planes(x, xs, g, weights, bias, relu, out, os);
        return;
    }
    let per_o = (xs.c * kk).max(1);
    let pad = g.pad as isize;
    // Output columns whose first and last taps (hence all taps) lie inside the input row.
    let inner = full_windows(os.w, xs.w, g);
    let tw_max = os.w.min(TILE);
    let rows_per_tile = (TILE / tw_max).max(1);

    let mut wt: [Acc; MAX_TAPS] = [[0.0; LANES]; MAX_TAPS];
    let mut acc: [Acc; TILE] = [[0.0; LANES]; TILE];
    for (blk, out_blk) in out.chunks_mut(LANES * ohw).enumerate() {
        let o0 = blk * LANES;
        let w_blk = weights.get(o0 * per_o..).unwrap_or(&[]);
        let mut b0: Acc = [0.0; LANES];
        for (l, b) in b0.iter_mut().enumerate() {
            *b = bias.and_then(|b| b.get(o0 + l)).copied().unwrap_or(0.0);
        }
        for oy0 in (0..os.h).step_by(rows_per_tile) {
            let rows = rows_per_tile.min(os.h - oy0);
            for ox0 in (0..os.w).step_by(tw_max) {
                let tw = tw_max.min(os.w - ox0);
                let tile = acc.get_mut(..rows * tw).unwrap_or(&mut []);
                tile.fill(b0);
                // The tile's columns split into left border, interior, right border.
                let lo = inner.start.clamp(ox0, ox0 + tw) - ox0;
                let hi = inner.end.clamp(ox0 + lo, ox0 + tw) - ox0;
                for (ci, x_c) in x.chunks_exact(ihw).enumerate().take(xs.c) {
                    for (l, w_o) in w_blk.chunks_exact(per_o).take(LANES).enumerate() {
                        let w_oc = w_o.get(ci * kk..(ci + 1) * kk).unwrap_or(&[]);
                        for (wt_t, &w) in wt.iter_mut().zip(w_oc) {
                            if let Some(v) = wt_t.get_mut(l) {
                                *v = w;
                            }
                        }
                    }
                    for (r, acc_row) in tile.chunks_exact_mut(tw).enumerate() {
                        // The input rows of this output row that lie inside the input, ky ascending.
                        let mut rows: [TapRow<'_>; MAX_K] = [(&[], &[]); MAX_K];
                        let mut n = 0;
                        for (ky, wt_ky) in wt.chunks_exact(k).take(k).enumerate() {
                            let iy = ((oy0 + r) * s + ky * d) as isize - pad;
                            if iy < 0 || iy >= xs.h as isize {
                                continue;
                            }
                            let iy = iy as usize;
                            if let (Some(x_row), Some(slot)) = (x_c.get(iy * xs.w..(iy + 1) * xs.w), rows.get_mut(n)) {
                                *slot = (x_row, wt_ky);
                                n += 1;
                            }
                        }
                        conv_rows(acc_row, ox0, lo..hi, rows.get(..n).unwrap_or(&[]), s, d, pad);
                    }
                }
                for (l, out_o) in out_blk.chunks_exact_mut(ohw).enumerate() {
                    for (r, acc_row) in tile.chunks_exact(tw).enumerate() {
                        let p = (oy0 + r) * os.w + ox0;
                        let Some(dst) = out_o.get_mut(p..p + tw) else {
                            continue;
                        };
                        for (o, a) in dst.iter_mut().zip(acc_row.iter()) {
                            let v = a.get(l).copied().unwrap_or(0.0);
                            *o = if relu { super::relu(v) } else { v };
                        }
                    }
                }
            }
        }
    }
}

/// Largest kernel side of the tiled conv.
const MAX_K: usize = 7;

/// One input row and the weights of its taps (`[kx]`, each `[lane]`).
type TapRow<'a> = (&'a [f32], &'a [Acc]);

/// The valid input rows of one output row (ky ascending) into its accumulators: `acc[j]` is
/// output column `ox0 + j`; `inner` (relative to `ox0`) are the columns whose taps all lie inside
/// the rows. Per output the taps run ky, then kx, ascending.
#[inline(always)]
fn conv_rows(
    acc: &mut [Acc],
    ox0: usize,
    inner: core::ops::Range<usize>,
    rows: &[TapRow<'_>],
    s: usize,
    d: usize,
    pad: isize,
) {
    let Some((left, rest)) = acc.split_at_mut_checked(inner.start) else {
        return;
    };
    let Some((mid, right)) = rest.split_at_mut_checked(inner.end - inner.start) else {
        return;
    };
    let border = |a: &mut Acc, ox: usize| {
        for &(x_row, w) in rows {
            for (kx, w_t) in w.iter().enumerate() {
                let ix = (ox * s + kx * d) as isize - pad;
                if ix >= 0 {
                    if let Some(&xv) = x_row.get(ix as usize) {
                        mac(a, xv, w_t);
                    }
                }
            }
        }
    };
    for (j, a) in left.iter_mut().enumerate() {
        border(a, ox0 + j);
    }
    // Interior: the first tap of column `ox0 + inner.start` is at `ix0 >= 0` in every row.
    let ix0 = (((ox0 + inner.start) * s) as isize - pad).max(0) as usize;
    fn tail(x_row: &[f32], ix0: usize) -> &[f32] {
        x_row.get(ix0..).unwrap_or(&[])
    }
    match (rows, d) {
        // The reduction skip: k = 2 (stride 2), both rows inside.
        ([(r0, [w00, w01]), (r1, [w10, w11])], 1) => {
            let (w00, w01, w10, w11) = (*w00, *w01, *w10, *w11);
            let wins = tail(r0, ix0).windows(2).step_by(s).zip(tail(r1, ix0).windows(2).step_by(s));
            for (a, (x0, x1)) in mid.iter_mut().zip(wins) {
                if let ([x00, x01], [x10, x11]) = (x0, x1) {
                    let mut v = *a;
                    mac(&mut v, *x00, &w00);
                    mac(&mut v, *x01, &w01);
                    mac(&mut v, *x10, &w10);
                    mac(&mut v, *x11, &w11);
                    *a = v;
                }
            }
        }
        // The stem: k = 3, all three rows inside.
        ([(r0, [w00, w01, w02]), (r1, [w10, w11, w12]), (r2, [w20, w21, w22])], 1) => {
            let w = [[w00, w01, w02], [w10, w11, w12], [w20, w21, w22]];
            let wins = tail(r0, ix0).windows(3).step_by(s).zip(tail(r1, ix0).windows(3).step_by(s));
            for (a, ((x0, x1), x2)) in mid.iter_mut().zip(wins.zip(tail(r2, ix0).windows(3).step_by(s))) {
                let mut v = *a;
                for (xr, wr) in [x0, x1, x2].iter().zip(&w) {
                    for (&xv, w_t) in xr.iter().zip(wr) {
                        mac(&mut v, xv, w_t);
                    }
                }
                *a = v;
            }
        }
        _ => {
            let span = rows.first().map_or(1, |(_, w)| w.len().saturating_sub(1) * d + 1);
            for (j, a) in mid.iter_mut().enumerate() {
                let mut v = *a;
                for &(x_row, w) in rows {
                    let win = tail(x_row, ix0).get(j * s..j * s + span).unwrap_or(&[]);
                    for (&xv, w_t) in win.iter().step_by(d.max(1)).zip(w) {
                        mac(&mut v, xv, w_t);
                    }
                }
                *a = v;
            }
        }
    }
    for (j, a) in right.iter_mut().enumerate() {
        border(a, ox0 + inner.end + j);
    }
}

/// The plain plane-at-a-time conv (same summation order), for kernels larger than `MAX_K`.
#[allow(clippy::too_many_arguments)]
fn conv2d_planes(
    x: &[f32],
    xs: Shape,
    g: ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    out: &mut [f32],
    os: Shape,
) {
    let (k, ihw, ohw) = (g.k, xs.hw(), os.hw());
    for (o, (out_o, w_o)) in
        out.chunks_exact_mut(ohw.max(1)).zip(weights.chunks_exact((xs.c * k * k).max(1))).enumerate()
    {
        out_o.fill(bias.and_then(|b| b.get(o)).copied().unwrap_or(0.0));
        // Accumulating whole output planes per (c, ky, kx) keeps, per element, the same order as a
        // naive loop over (c, ky, kx).
        for (x_c, w_c) in x.chunks_exact(ihw.max(1)).zip(w_o.chunks_exact((k * k).max(1))) {
            for (t, &wv) in w_c.iter().enumerate() {
                let off_y = (t / k * g.dil) as isize - g.pad as isize;
                let off_x = (t % k * g.dil) as isize - g.pad as isize;
                let cols = valid_range(os.w, xs.w, g.stride, off_x);
                for oy in valid_range(os.h, xs.h, g.stride, off_y) {
                    let iy = (oy * g.stride) as isize + off_y;
                    let ix0 = ((cols.start * g.stride) as isize + off_x) as usize;
                    let x_row = x_c.get(iy as usize * xs.w..(iy as usize + 1) * xs.w).unwrap_or(&[]);
                    let out_row = out_o.get_mut(oy * os.w + cols.start..oy * os.w + cols.end).unwrap_or(&mut []);
                    for (o_v, &x_v) in out_row.iter_mut().zip(x_row.iter().skip(ix0).step_by(g.stride)) {
                        *o_v += wv * x_v;
                    }
                }
            }
        }
        if relu {
            out_o.iter_mut().for_each(|v| *v = super::relu(*v));
        }
    }
}

/// Values per turn of the element-wise adds' loops, whose loads and stores the compiler addresses
/// from one base per operand: 4.2 instructions per value on the Cortex-M4 (a 12-channel 28x28 add
/// in 39.7 K), against 5.6 for its own unrolling of the plain loop by 4 (52.3 K).
const ADD_BLOCK: usize = 8;

/// `out = a + b`.
pub fn add_into(a: &[f32], b: &[f32], out: &mut [f32]) {
    let n = out.len().min(a.len()).min(b.len());
    let (Some(a), Some(b), Some(out)) = (a.get(..n), b.get(..n), out.get_mut(..n)) else { return };
    let ((a8, a1), (b8, b1), (o8, o1)) =
        (a.as_chunks::<ADD_BLOCK>(), b.as_chunks::<ADD_BLOCK>(), out.as_chunks_mut::<ADD_BLOCK>());
    for ((o, x), y) in o8.iter_mut().zip(a8).zip(b8) {
        o.iter_mut().zip(x).zip(y).for_each(|((o, &x), &y)| *o = x + y);
    }
    for ((o, &x), &y) in o1.iter_mut().zip(a1).zip(b1) {
        *o = x + y;
    }
}

/// `acc = acc + b` (the in-place form of `add` when the output is an input).
pub fn add_assign(acc: &mut [f32], b: &[f32]) {
    let n = acc.len().min(b.len());
    let (Some(acc), Some(b)) = (acc.get_mut(..n), b.get(..n)) else { return };
    let ((a8, a1), (b8, b1)) = (acc.as_chunks_mut::<ADD_BLOCK>(), b.as_chunks::<ADD_BLOCK>());
    for (o, y) in a8.iter_mut().zip(b8) {
        o.iter_mut().zip(y).for_each(|(o, &y)| *o += y);
    }
    for (o, &y) in a1.iter_mut().zip(b1) {
        *o += y;
    }
}

/// `out[c] = (sum over the h*w pixels of x[c], in order) * reciprocal(h*w)`.
pub fn global_avg_pool(x: &[f32], hw: usize, out: &mut [f32]) {
    let r = reciprocal(hw);
    for (o, x_c) in out.iter_mut().zip(x.chunks_exact(hw.max(1))) {
        *o = x_c.iter().fold(0.0f32, |acc, &v| acc + v) * r;
    }
}

/// `out[j] = (sum_i w[j, i] * x[i], i ascending) + bias[j]`; `weights` is `[classes, n]`.
pub fn linear(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32]) {
    for ((o, w_j), &b) in out.iter_mut().zip(weights.chunks_exact(x.len().max(1))).zip(bias) {
        let dot = w_j.iter().zip(x).fold(0.0f32, |acc, (w, v)| acc + w * v);
        *o = dot + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: per output, bias then `c, ky, kx` ascending over valid taps.
    fn naive(x: &[f32], xs: Shape, g: ConvGeom, w: &[f32], bias: Option<&[f32]>, relu: bool, os: Shape) -> Vec<f32> {
        let k = g.k;
        let mut out = Vec::new();
        for o in 0..os.c {
            for oy in 0..os.h {
                for ox in 0..os.w {
                    let mut acc = bias.map_or(0.0, |b| b[o]);
                    for c in 0..xs.c {
                        for t in 0..k * k {
                            let iy = (oy * g.stride + t / k * g.dil) as isize - g.pad as isize;
                            let ix = (ox * g.stride + t % k * g.dil) as isize - g.pad as isize;
                            if iy < 0 || ix < 0 || iy >= xs.h as isize || ix >= xs.w as isize {
                                continue;
                            }
                            acc += w[(o * xs.c + c) * k * k + t] * x[(c * xs.h + iy as usize) * xs.w + ix as usize];
                        }
                    }
                    out.push(if relu { crate::kernels::relu(acc) } else { acc });
                }
            }
        }
        out
    }

    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
        fn f32(&mut self) -> f32 {
            self.below(1 << 20) as f32 / (1 << 19) as f32 - 1.0
        }
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn tiled_conv_is_bit_identical_to_the_naive_loop() {
        let mut r = Lcg(7);
        for case in 0..600 {
            let k = 1 + r.below(7);
            let (stride, dil, pad) = (1 + r.below(3), 1 + r.below(3), r.below(5));
            let c_in = 1 + r.below(5);
            let c_out = 1 + r.below(20);
            let (h, w) = (1 + r.below(40), 1 + r.below(40));
            let span = dil * (k - 1) + 1;
            if h + 2 * pad < span || w + 2 * pad < span {
                continue;
            }
            let os = Shape { c: c_out, h: (h + 2 * pad - span) / stride + 1, w: (w + 2 * pad - span) / stride + 1 };
            check_conv(&mut r, case, Shape { c: c_in, h, w }, ConvGeom { k, stride, pad, dil }, os, conv2d);
        }
    }

    /// Runs `conv` on random input, weights and bias (none in every third case, ReLU in every
    /// other) and checks it against the naive loop, bit for bit.
    fn check_conv(r: &mut Lcg, case: usize, xs: Shape, g: ConvGeom, os: Shape, conv: Conv2d) {
        let x: Vec<f32> = (0..xs.c * xs.hw()).map(|_| r.f32()).collect();
        let wts: Vec<f32> = (0..os.c * xs.c * g.k * g.k).map(|_| r.f32()).collect();
        let b: Vec<f32> = (0..os.c).map(|_| r.f32()).collect();
        let bias = (!case.is_multiple_of(3)).then_some(&b[..]);
        let relu = case.is_multiple_of(2);
        let mut out = vec![f32::NAN; os.c * os.hw()];
        conv(&x, xs, g, &wts, bias, relu, &mut out, os);
        let want = naive(&x, xs, g, &wts, bias, relu, os);
        assert!(same_bits(&out, &want), "case {case}: {xs:?} {g:?} -> {os:?}");
    }

    type Conv2d = fn(&[f32], Shape, ConvGeom, &[f32], Option<&[f32]>, bool, &mut [f32], Shape);

    /// The Cortex-M4's conv (register blocks, then tiles for the rest; run here on the host too)
    /// on the geometries the blocks take (2x2 stride 2, 3x3 stride 1) and one they decline (3x3
    /// stride 2), padding 0-2, 1-13 output channels (blocks of 4 and the rest), rows of 1-40
    /// columns (interiors narrower than a block, whole blocks, a last block overlapping the one
    /// before, the borders; a fifth of the cases same-size 3x3 rows of whole blocks, whose first
    /// and last blocks skip the padding's taps), a third of the cases with rows a multiple of 7
    /// wide and 3-12 output channels (the 3 x 7 blocks), a quarter with 15-50 input channels and
    /// an eighth with 60-159 (the blocks' weight table takes 64 channels at 2x2, 28 at 3x3: the
    /// rest go in chunks).
    #[test]
    fn register_conv_is_bit_identical_to_the_naive_loop() {
        let mut r = Lcg(9);
        let mut cases = 0;
        for case in 0..600 {
            let (mut k, mut stride) = [(2, 2), (3, 1), (3, 2)][r.below(3)];
            let mut pad = r.below(3);
            let (mut c_in, mut c_out) = (1 + r.below(5), 1 + r.below(13));
            if case % 4 == 1 {
                c_in = 15 + r.below(36);
            }
            if case % 8 == 7 {
                // More input channels than the blocks' weight table holds: chunks of channels.
                c_in = 60 + r.below(100);
            }
            let (h, mut w) = (1 + r.below(12), 1 + r.below(40));
            if case % 3 == 0 {
                // Rows a multiple of 7 wide and channels a multiple of 3: the 3 x 7 blocks.
                (c_out, w) = (3 * (1 + r.below(4)), (7 * (1 + r.below(4)) - 1) * stride + k - 2 * pad);
            }
            if case % 5 == 2 {
                // Same-size 3x3 rows of two or more whole blocks (4 or 7 columns): every column
                // in blocks, the first and last skipping their taps on the padding.
                (k, stride, pad) = (3, 1, 1);
                w = if r.below(2) == 0 { 4 * (2 + r.below(6)) } else { 7 * (2 + r.below(4)) };
            }
            if h + 2 * pad < k || w + 2 * pad < k {
                continue;
            }
            let os = Shape { c: c_out, h: (h + 2 * pad - k) / stride + 1, w: (w + 2 * pad - k) / stride + 1 };
            check_conv(
                &mut r,
                case,
                Shape { c: c_in, h, w },
                ConvGeom { k, stride, pad, dil: 1 },
                os,
                conv2d_scalar_fpu,
            );
            cases += 1;
        }
        assert!(cases > 450);
    }

    /// The blocked adds against a plain loop, bit for bit, at every length 0-40 (whole blocks and
    /// every tail), with the inputs and output of unequal lengths cut to the shortest.
    #[test]
    fn adds_match_a_plain_loop() {
        let mut next = crate::xorshift32(0xADD5_EED5);
        let mut value = || f32::from_bits(next() & 0xBF7F_FFFF);
        for n in 0..41 {
            let a: Vec<f32> = (0..n + 3).map(|_| value()).collect();
            let b: Vec<f32> = (0..n).map(|_| value()).collect();
            let want: Vec<u32> = a.iter().zip(&b).map(|(x, y)| (x + y).to_bits()).collect();
            let mut out = vec![f32::NAN; n + 1];
            add_into(&a, &b, &mut out);
            assert_eq!(out[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "add_into, n {n}");
            assert!(out[n].is_nan(), "add_into wrote past the shortest operand, n {n}");
            let mut acc = a.clone();
            add_assign(&mut acc, &b);
            assert_eq!(acc[..n].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "add_assign, n {n}");
            assert_eq!(acc[n..], a[n..], "add_assign changed values past `b`, n {n}");
        }
    }
}
