//! The binary conv: threshold-binarize and pack the input, then XNOR-popcount per output pixel.

use super::Shape;
use crate::format::{words_for, BITS};
use crate::model::ConvGeom;
use crate::popcount::xor_popcount;

/// Packs `bit[c, p] = x[c, p] * flip[c] >= threshold[c]` into `bits`, laid out `[h*w, words]`
/// (channels along the words, LSB first; padding channels stay 0).
///
/// Where the target has a popcount instruction (x86-64), 64 pixels at a time, their words
/// gathered over the channels (they vectorize). On the Cortex-M4, 32 channels x 32 pixels at a
/// time, packed along the pixels and transposed: ~9.0 instructions a value on the demo's 7x7
/// and 14x14 planes, all in, against ~9.6 for blocks of 8 pixels with a conditional OR per bit.
pub fn binarize(x: &[f32], hw: usize, flip: &[f32], threshold: &[f32], bits: &mut [u32]) {
    if crate::popcount::HARDWARE_POPCOUNT {
        by_blocks(x, hw, flip, threshold, bits, gathered::<64>)
    } else {
        by_blocks(x, hw, flip, threshold, bits, transposed)
    }
}

/// [`binarize`]'s frame: the words past the pixels zeroed, then for each 32 channels the pixels
/// `B` at a time, each block's words written once. `block` takes the channel planes (`hw` pixels
/// each), their flips and thresholds, and the block's first pixel; it returns each pixel's word.
#[inline(always)]
fn by_blocks<const B: usize>(
    x: &[f32],
    hw: usize,
    flip: &[f32],
    threshold: &[f32],
    bits: &mut [u32],
    block: impl Fn(&[f32], usize, &[f32], &[f32], usize) -> [u32; B],
) {
    let wpt = words_for(flip.len());
    if let Some(rest) = bits.get_mut(hw * wpt..) {
        rest.fill(0);
    }
    if wpt == 0 || hw == 0 {
        return;
    }
    let words = x.chunks(BITS * hw).zip(flip.chunks(BITS).zip(threshold.chunks(BITS)));
    for (wi, (x_w, (flip, threshold))) in words.enumerate() {
        for p0 in (0..hw).step_by(B) {
            let acc = block(x_w, hw, flip, threshold, p0);
            for (px, &a) in bits.chunks_exact_mut(wpt).skip(p0).take(B.min(hw - p0)).zip(&acc) {
                if let Some(word) = px.get_mut(wi) {
                    *word = a;
                }
            }
        }
    }
}

/// The hosts' block: each channel's bits set in the `B` pixels' words, channel after channel
/// (the comparisons and shifts vectorize).
#[inline(always)]
fn gathered<const B: usize>(x_w: &[f32], hw: usize, flip: &[f32], threshold: &[f32], p0: usize) -> [u32; B] {
    let mut acc = [0u32; B];
    for (shift, (plane, (&f, &t))) in (0..BITS as u32).zip(x_w.chunks_exact(hw).zip(flip.iter().zip(threshold))) {
        let th = super::Threshold::new(f, t);
        match plane.get(p0..).and_then(|p| p.first_chunk::<B>()) {
            Some(xs) => super::with_threshold!(th, bool, |bit| set_block(&mut acc, xs, shift, bit)),
            None => {
                let xs = plane.get(p0..).unwrap_or(&[]);
                super::with_threshold!(th, bool, |bit| set_block(&mut acc, xs, shift, bit))
            }
        }
    }
    acc
}

/// The Cortex-M4's block of 32 pixels: each channel's bits packed along the pixels as the lane
/// rows are ([`super::Packer`]), then the 32 x 32 bit matrix transposed. A call of its own
/// (one per 1,024 values): inlined, the demo ran 8 K instructions more.
#[inline(never)]
fn transposed(x_w: &[f32], hw: usize, flip: &[f32], threshold: &[f32], p0: usize) -> [u32; BITS] {
    let mut m = [0u32; BITS];
    let n = BITS.min(hw.saturating_sub(p0));
    for (row, (plane, (&f, &t))) in m.iter_mut().zip(x_w.chunks_exact(hw).zip(flip.iter().zip(threshold))) {
        let px = plane.get(p0..p0 + n).unwrap_or(&[]);
        let th = super::Threshold::opaque(f, t);
        *row = super::with_threshold!(th, |step| super::Packer(step).word(px.iter()));
    }
    for (s, mask) in [(16, 0x0000_FFFF), (8, 0x00FF_00FF), (4, 0x0F0F_0F0F), (2, 0x3333_3333), (1, 0x5555_5555)] {
        super::lane_count::swap_blocks(&mut m, s, 1, mask);
    }
    m
}

/// Sets bit `shift` of `acc[j]` where `bit(xs[j])` holds.
#[inline(always)]
fn set_block<const B: usize>(acc: &mut [u32; B], xs: &[f32], shift: u32, bit: impl Fn(f32) -> bool) {
    for (a, &v) in acc.iter_mut().zip(xs) {
        *a |= u32::from(bit(v)) << shift;
    }
}

/// XNOR-popcount conv over packed bits `[h_in*w_in, words]` with weights `[c_out, k*k, words]`,
/// one tap at a time: the twin that [`super::bin_conv_dense`] and [`super::bin_conv_lanes`] (what
/// the device runs) are tested against.
///
/// For each output pixel the taps are gathered into `row` (`[k*k, words]`, padded taps zeroed),
/// then for each filter `s = c_in*k*k - 2*popcount(row ^ w)`. A zeroed padded tap contributes
/// `c_in - 2*popcount(w_tap)` to that; `tap_sums` (`[c_out, k*k]` scratch, filled here once per
/// call) holds those values, and subtracting them for each padded tap makes padding contribute
/// exactly 0, as zero padding after sign does in the float network.
/// `out[o, p] = relu(s as f32 * scale[o])`.
#[allow(clippy::too_many_arguments)]
pub fn bin_conv(
    bits: &[u32],
    xs: Shape,
    g: ConvGeom,
    scale: &[f32],
    packed: &[u32],
    row: &mut [u32],
    tap_sums: &mut [u32],
    out: &mut [f32],
    os: Shape,
) {
    let wpt = words_for(xs.c);
    let kk = g.k * g.k;
    let row_len = kk * wpt;
    if wpt == 0 || row.len() < row_len || kk > MAX_TAPS {
        return;
    }
    for (sum, w_tap) in tap_sums.iter_mut().zip(packed.chunks_exact(wpt)) {
        let ones: u32 = w_tap.iter().map(|w| w.count_ones()).sum();
        *sum = (xs.c as i32 - 2 * ones as i32) as u32;
    }
    let full = (xs.c * kk) as i32;
    let ohw = os.hw();
    let mut padded = [0u8; MAX_TAPS];
    for p in 0..ohw {
        let (oy, ox) = (p / os.w, p % os.w);
        let mut n_padded = 0usize;
        let (mut ky, mut kx) = (0usize, 0usize);
        for (t, tap) in row.chunks_exact_mut(wpt).take(kk).enumerate() {
            let iy = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
            let ix = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
            kx += 1;
            if kx == g.k {
                (kx, ky) = (0, ky + 1);
            }
            let src = if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                let at = (iy as usize * xs.w + ix as usize) * wpt;
                bits.get(at..at + wpt)
            } else {
                None
            };
            match src {
                Some(src) => tap.iter_mut().zip(src).for_each(|(d, s)| *d = *s),
                None => {
                    tap.iter_mut().for_each(|d| *d = 0);
                    if let Some(slot) = padded.get_mut(n_padded) {
                        *slot = t as u8;
                        n_padded += 1;
                    }
                }
            }
        }
        let row = row.get(..row_len).unwrap_or(&[]);
        let padded = padded.get(..n_padded).unwrap_or(&[]);
        let outs = out.iter_mut().skip(p).step_by(ohw.max(1));
        let filters = packed.chunks_exact(row_len).zip(tap_sums.chunks_exact(kk));
        for ((o, (w_o, sums)), &sc) in outs.zip(filters).zip(scale) {
            let mut s = full - 2 * xor_popcount(row, w_o) as i32;
            for &t in padded {
                s -= sums.get(usize::from(t)).copied().unwrap_or(0) as i32;
            }
            *o = super::relu(s as f32 * sc);
        }
    }
}

/// Largest number of taps (`k*k` for k <= 7).
const MAX_TAPS: usize = crate::format::MAX_KERNEL * crate::format::MAX_KERNEL;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Both packings (the Cortex-M4's transposed rows, the hosts' blocks of 64) against the
    /// definition, bit by bit: 1-70 channels (padding channels 0), pixel counts around the blocks,
    /// each flip kind, thresholds of both signs and zero, and words past the pixels zeroed.
    #[test]
    fn binarizers_pack_the_definition() {
        let mut next = crate::xorshift32(0x1234_5678);
        for c in [1usize, 5, 31, 32, 33, 64, 70] {
            for hw in [1usize, 7, 8, 9, 31, 32, 33, 49, 64, 65, 196] {
                let x: Vec<f32> = (0..c * hw).map(|_| (next() % 1000) as f32 / 500.0 - 1.0).collect();
                let flip: Vec<f32> = (0..c).map(|i| [1.0, -1.0, 0.5, -2.0][i % 4]).collect();
                let threshold: Vec<f32> = (0..c).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
                let wpt = words_for(c);
                let mut want = vec![0u32; hw * wpt + 3];
                for (ch, plane) in x.chunks_exact(hw).enumerate() {
                    for (p, &v) in plane.iter().enumerate() {
                        want[p * wpt + ch / 32] |= u32::from(v * flip[ch] >= threshold[ch]) << (ch % 32);
                    }
                }
                let mut got = vec![0xDEAD_BEEF; hw * wpt + 3];
                by_blocks(&x, hw, &flip, &threshold, &mut got, transposed);
                assert_eq!(got, want, "transposed: {c} channels, {hw} pixels");
                got.fill(0xDEAD_BEEF);
                by_blocks(&x, hw, &flip, &threshold, &mut got, gathered::<64>);
                assert_eq!(got, want, "blocks of 64: {c} channels, {hw} pixels");
            }
        }
    }
}
