//! The binary conv: threshold-binarize and pack the input, then XNOR-popcount per output pixel.

use super::Shape;
use crate::format::{words_for, BITS};
use crate::model::ConvGeom;
use crate::popcount::xor_popcount;

/// Packs `bit[c, p] = x[c, p] * flip[c] >= threshold[c]` into `bits`, laid out `[h*w, words]`
/// (channels along the words, LSB first; padding channels stay 0).
pub fn binarize(x: &[f32], hw: usize, flip: &[f32], threshold: &[f32], bits: &mut [u32]) {
    let wpt = words_for(flip.len());
    bits.fill(0);
    if wpt == 0 {
        return;
    }
    for (c, (x_c, (&f, &t))) in x.chunks_exact(hw).zip(flip.iter().zip(threshold)).enumerate() {
        let mask = 1u32 << (c % BITS);
        for (&v, word) in x_c.iter().zip(bits.iter_mut().skip(c / BITS).step_by(wpt)) {
            if v * f >= t {
                *word |= mask;
            }
        }
    }
}

/// XNOR-popcount conv over packed bits `[h_in*w_in, words]` with weights `[c_out, k*k, words]`.
///
/// For each output pixel the valid taps are gathered into `row` (`[k*k, words]`, padded taps
/// zeroed), then for each filter `s = c_in*k*k - 2*popcount(row ^ w)`. A zeroed padded tap
/// contributes `-sum_c w[c]` to that; adding back `c_in - 2*popcount(w_tap)` for each padded tap
/// makes it contribute exactly 0, as zero padding after sign does in the float network.
/// `out[o, p] = max(0, s as f32 * scale[o])`.
#[allow(clippy::too_many_arguments)]
pub fn bin_conv(
    bits: &[u32],
    xs: Shape,
    g: ConvGeom,
    scale: &[f32],
    packed: &[u32],
    row: &mut [u32],
    out: &mut [f32],
    os: Shape,
) {
    let wpt = words_for(xs.c);
    let kk = g.k * g.k;
    let row_len = kk * wpt;
    if wpt == 0 || row.len() < row_len {
        return;
    }
    let full = (xs.c * kk) as i32;
    let ohw = os.hw();
    for p in 0..ohw {
        let (oy, ox) = (p / os.w, p % os.w);
        let mut padded = 0u64;
        for (t, tap) in row.chunks_exact_mut(wpt).take(kk).enumerate() {
            let iy = (oy * g.stride + t / g.k * g.dil) as isize - g.pad as isize;
            let ix = (ox * g.stride + t % g.k * g.dil) as isize - g.pad as isize;
            let src = if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                let at = (iy as usize * xs.w + ix as usize) * wpt;
                bits.get(at..at + wpt)
            } else {
                None
            };
            match src {
                Some(src) => tap.copy_from_slice(src),
                None => {
                    tap.fill(0);
                    padded |= 1u64 << t;
                }
            }
        }
        let row = row.get(..row_len).unwrap_or(&[]);
        let outs = out.iter_mut().skip(p).step_by(ohw.max(1));
        for ((o, w_o), &sc) in outs.zip(packed.chunks_exact(row_len)).zip(scale) {
            let mut s = full - 2 * xor_popcount(row, w_o) as i32;
            if padded != 0 {
                s -= padding_correction(w_o, wpt, xs.c, padded);
            }
            *o = (s as f32 * sc).max(0.0);
        }
    }
}

/// What the zeroed padded taps added to the count: `sum over padded taps of (c_in - 2*popcount(w_tap))`.
fn padding_correction(w_o: &[u32], wpt: usize, c_in: usize, padded: u64) -> i32 {
    let mut corr = 0i32;
    for (t, w_tap) in w_o.chunks_exact(wpt).enumerate() {
        if (padded >> t) & 1 == 1 {
            let ones: u32 = w_tap.iter().map(|w| w.count_ones()).sum();
            corr += c_in as i32 - 2 * ones as i32;
        }
    }
    corr
}
